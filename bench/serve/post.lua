-- wrk script of bench/serve.py, bench/cache.py and bench/gateway.py: POST a JSON body,
-- print the results as one JSON line.
--
--   wrk -t1 -c32 -d10s --latency -s bench/serve/post.lua URL -- [BODY [KEY]]
--
-- BODY is the JSON to POST (default: the iris row of bench/serve.py); KEY, if given and not
-- empty, is sent as `Authorization: Bearer KEY`. done() prints a line starting with
-- BENCH_JSON that the scripts read (latencies in microseconds; errors.status counts answers
-- with a status of 400 or more).

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"features": [5.1, 3.5, 1.4, 0.2]}'

function init(args)
  if args[1] ~= nil then
    wrk.body = args[1]
  end
  if args[2] ~= nil and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
