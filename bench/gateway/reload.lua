-- wrk script of bench/gateway.py for the reload-under-load run: like bench/serve/post.lua,
-- and also counts the answers that are not 200 and the longest time without any answer (the
-- "gap", over all connections of the thread, from a monotonic clock via LuaJIT's ffi).
--
--   wrk -t1 -c32 -d20s --latency -s bench/gateway/reload.lua URL -- BODY [KEY]

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.body = args[1]
  if args[2] ~= nil and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
  last = nil
  max_gap = 0
  not_ok = 0
end

function response(status, headers, body)
  local t = now_us()
  if last ~= nil and t - last > max_gap then
    max_gap = t - last
  end
  last = t
  if status ~= 200 then
    not_ok = not_ok + 1
  end
end

function done(summary, latency, requests)
  local gap, bad = 0, 0
  for _, thread in ipairs(threads) do
    gap = math.max(gap, thread:get("max_gap") or 0)
    bad = bad + (thread:get("not_ok") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, '
      .. '"not_200": %d, "max_gap_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, bad, gap))
end
