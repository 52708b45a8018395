-- Unique, plausible events for many users: metro trips 40 minutes apart, at most 16 a day per
-- user, spread over past days, so the plausibility rules credit them (no overlap, sane speed).
-- TOKENS (a Lua table of JWTs, one per user) and BASE (unix time of the newest day's start)
-- come from the generated bench/wrk/tokens.lua, loaded with dofile below.
dofile(os.getenv("BENCH_TOKENS") or "bench/wrk/tokens.lua")

local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- BENCH_OFFSET: where a run continues the sequence (bench/ingest_bench.py's interleaved
  -- rounds load one database several times; each run starts past the last one's events)
  counter = tonumber(os.getenv("BENCH_OFFSET") or "0")
end

local PAIRS = {
  {"luohu", "shaoniangong"}, {"laojie", "huizhanzhongxin"}, {"guomao", "chegongmiao"},
  {"fumin", "shangmeilin"}, {"hongling", "gouwugongyuan"},
}

-- BENCH_THREADS: wrk's -t, so that the threads' sequences interleave without a gap
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

request = function()
  counter = counter + 1
  -- a global sequence number, distinct across threads: every user in turn, then again a
  -- trip later (a stride of 64 with 2,000 users, as this had, visited 125 of them)
  local n = (counter - 1) * nthreads + thread_id
  local users = #TOKENS
  local user = (n % users) + 1
  local k = math.floor(n / users)               -- this user's k-th trip
  local day, slot = math.floor(k / 16), k % 16
  local start = BASE - day * 86400 + slot * 2400 + 600
  local pair = PAIRS[(k % #PAIRS) + 1]
  local body = string.format(
    '{"event_id":"b%d-%d","mode":"metro","city":"shenzhen","entry_station_id":"%s",' ..
    '"exit_station_id":"%s","started_at":"%s","ended_at":"%s"}',
    thread_id, counter, pair[1], pair[2],
    os.date("!%Y-%m-%dT%H:%M:%S+00:00", start), os.date("!%Y-%m-%dT%H:%M:%S+00:00", start + 1500))
  return wrk.format("POST", "/v1/events", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. TOKENS[user],
  }, body)
end

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  -- one line wrk's caller can parse: per-status counts come from each thread's own table,
  -- so report the totals wrk itself kept (errors and non-2xx) as well
  io.write(string.format("BENCH non2xx=%d\n", summary.errors.status))
end
