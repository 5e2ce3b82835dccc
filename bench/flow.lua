-- A patient's browser booking flow, one connection per wrk thread, each thread a logged-in browser
-- (its session cookie from BENCH_COOKIES, line = thread id). Every request the browser makes:
--   1. GET  /clinic/search                       the search page
--   2. GET  /clinic/search?date=D                 htmx: the results fragment for a date
--   3. GET  /clinic/slots/<id>                    htmx: the slot panel with the booking form
--   4. POST /clinic/slots/<id>/book               the form: CSRF token, one-time booking key, name, number
--   5. GET  /clinic/appointments/<id>             following the 303 to the confirmation (token number)
-- Slot ids, the CSRF token, the booking key and the redirect target are read from the answers,
-- and the session cookie follows every Set-Cookie, as a browser's would.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local cookies = read_lines(os.getenv("BENCH_COOKIES"))
local dates = {}
for d in string.gmatch(os.getenv("BENCH_DATES"), "[^,]+") do dates[#dates + 1] = d end

local state, cookie, slot, csrf, key, location, date = 1, nil, nil, nil, nil, nil, nil
bookings, broken = 0, 0

function init(args)
  seed()
  cookie = cookies[tid]
end

local function headers(htmx, target)
  local h = {["Cookie"] = "session=" .. cookie}
  if htmx then
    h["HX-Request"] = "true"
    h["HX-Target"] = target
    h["HX-Current-URL"] = "http://127.0.0.1/clinic/search"
  end
  return h
end

request = function()
  if state == 1 then
    return wrk.format("GET", "/clinic/search", headers(false))
  elseif state == 2 then
    date = dates[math.random(#dates)]
    return wrk.format("GET", "/clinic/search?date=" .. date, headers(true, "slot-results"))
  elseif state == 3 then
    return wrk.format("GET", "/clinic/slots/" .. slot, headers(true, "slot-panel"))
  elseif state == 4 then
    local h = headers(false)
    h["Content-Type"] = "application/x-www-form-urlencoded"
    local body = "csrf_token=" .. csrf .. "&booking_key=" .. key .. "&patient_name=Bench+Patient&contact_number=9876543210"
    return wrk.format("POST", "/clinic/slots/" .. slot .. "/book", h, body)
  else
    return wrk.format("GET", location, headers(false))
  end
end

local function restart()
  broken = broken + 1
  state = 1
end

response = function(status, hdrs, body)
  local set = hdrs["Set-Cookie"] or hdrs["set-cookie"]
  if set then
    local value = string.match(set, "session=([^;]*)")
    if value and value ~= "" then cookie = value end
  end
  if state == 1 then
    if status == 200 then state = 2 else restart() end
  elseif state == 2 then
    local ids = {}
    for id in string.gmatch(body, '<tr id="result%-(%d+)"') do ids[#ids + 1] = id end
    if status == 200 and #ids > 0 then
      slot = ids[math.random(#ids)]
      state = 3
    else restart() end
  elseif state == 3 then
    csrf = string.match(body, 'name="csrf_token" type="hidden" value="([^"]+)"')
    key = string.match(body, 'name="booking_key" type="hidden" value="([^"]+)"')
    if status == 200 and csrf and key then state = 4 else restart() end
  elseif state == 4 then
    location = hdrs["Location"] or hdrs["location"]
    if status == 303 and location then
      location = string.gsub(location, "^https?://[^/]+", "")
      state = 5
    else restart() end
  else
    if status == 200 and string.find(body, "Token", 1, true) then
      bookings = bookings + 1
      state = 1
    else restart() end
  end
end

function done(summary, latency, requests) report({"bookings", "broken"}) end
