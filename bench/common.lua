-- Shared by the bench's wrk scripts: per-thread ids, seeding, and summing counters over threads.
-- wrk runs this file once in the main Lua state (setup/done) and once in each thread's state.
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function seed()
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  -- LuaJIT's first draws after seeding are poorly mixed.
  for _ = 1, 10 do math.random() end
end

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  return lines
end

-- Print "BENCH name value" for each named per-thread counter, summed over threads (read by bench/harness.py).
function report(names)
  for _, name in ipairs(names) do
    local total = 0
    for _, thread in ipairs(threads) do total = total + (thread:get(name) or 0) end
    io.write(string.format("BENCH %s %d\n", name, total))
  end
end
