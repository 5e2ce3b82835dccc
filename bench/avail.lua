-- GET the availability fragment of a random slot among SLOTS starting at SLOT_FIRST.
-- With CONDITIONAL=1 each thread remembers the ETag it saw per slot and sends If-None-Match,
-- as htmx's polling does through the browser cache (answers are 304 while nothing changed).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local first = tonumber(os.getenv("SLOT_FIRST"))
local count = tonumber(os.getenv("SLOTS"))
local conditional = os.getenv("CONDITIONAL") == "1"
local etags = {}
-- With WITH_COOKIE=1 each thread sends a logged-in patient's session cookie, as a patient's open page does.
local cookies = os.getenv("WITH_COOKIE") == "1" and read_lines(os.getenv("BENCH_COOKIES")) or nil
local cookie = nil
ok, not_modified, other = 0, 0, 0

function init(args)
  seed()
  if cookies then cookie = "session=" .. cookies[(tid - 1) % #cookies + 1] end
end

request = function()
  local slot = first + math.random(0, count - 1)
  local headers = {}
  if cookie then headers["Cookie"] = cookie end
  if conditional and etags[slot] then headers["If-None-Match"] = etags[slot] end
  return wrk.format("GET", "/clinic/slots/" .. slot .. "/availability", headers)
end

response = function(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 304 then not_modified = not_modified + 1
  else other = other + 1 end
  local etag = headers["ETag"] or headers["Etag"] or headers["etag"]
  if conditional and etag then
    -- The ETag names its slot ("<id>-<version>-<past>"), so no request bookkeeping is needed.
    local slot = tonumber(string.match(etag, '^W?/?"?(%d+)%-'))
    if slot then etags[slot] = etag end
  end
end

function done(summary, latency, requests) report({"ok", "not_modified", "other"}) end
