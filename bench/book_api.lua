-- POST /api/appointments to a random slot among SLOTS starting at SLOT_FIRST, with a random patient's bearer token.
-- Each request carries a fresh Idempotency-Key, as a careful API client sends.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local tokens = read_lines(os.getenv("BENCH_TOKENS"))
local first = tonumber(os.getenv("SLOT_FIRST"))
local count = tonumber(os.getenv("SLOTS"))
local run = os.getenv("BENCH_RUN")
local n = 0
created, conflicts, other = 0, 0, 0

function init(args) seed() end

request = function()
  n = n + 1
  local slot = first + math.random(0, count - 1)
  local body = '{"slotId":' .. slot .. ',"patientName":"Bench Patient","contactNumber":"9876543210"}'
  return wrk.format("POST", "/api/appointments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
    ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. n,
  }, body)
end

response = function(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 409 then conflicts = conflicts + 1
  else other = other + 1 end
end

function done(summary, latency, requests) report({"created", "conflicts", "other"}) end
