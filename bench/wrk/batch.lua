-- POST /v1/events/batch: each request is one fresh user's batch of events (the same body for
-- every user: event ids are unique per user, and every user is new, so every item is a new,
-- valid event). The body (bench/results/batch-body.json) and the tokens
-- (bench/results/batch-tokens.lua: TOKENS, one JWT per user) are written by
-- bench/batch_bench.py, which also says how the trips pass the plausibility rules.
dofile(os.getenv("BENCH_TOKENS") or "bench/results/batch-tokens.lua")
local f = assert(io.open(os.getenv("BENCH_BATCH_BODY") or "bench/results/batch-body.json", "rb"))
local BODY = f:read("*a")
f:close()
local STRIDE = tonumber(os.getenv("BENCH_THREADS") or "1")

local counter = 0
local threads = {}
-- per-thread totals, read by done() through thread:get (so they are globals)
replies, ok_replies, created, credited, reused = 0, 0, 0, 0, 0

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

request = function()
  -- one user per request, distinct across threads; wrapping around would replay a batch
  local n = counter * STRIDE + thread_id
  counter = counter + 1
  if n >= #TOKENS then
    reused = reused + 1
  end
  return wrk.format("POST", "/v1/events/batch", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. TOKENS[(n % #TOKENS) + 1],
  }, BODY)
end

response = function(status, headers, body)
  replies = replies + 1
  if status == 200 then
    ok_replies = ok_replies + 1
    -- items are {"error":..,"index":..,"result":{..,"status":"credited",..},"status":201}
    local _, new = string.gsub(body, '"status":%s*201', "")
    local _, ok = string.gsub(body, '"status":%s*"credited"', "")
    created = created + new
    credited = credited + ok
  end
end

done = function(summary, latency, requests)
  local t = {replies = 0, ok_replies = 0, created = 0, credited = 0, reused = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
  end
  io.write(string.format("BENCH replies=%d ok_replies=%d created=%d credited=%d reused=%d\n",
                         t.replies, t.ok_replies, t.created, t.credited, t.reused))
end
