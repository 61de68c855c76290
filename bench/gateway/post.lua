-- wrk script of bench/gateway.py: POST a JSON body, print the results as one JSON line.
--
--   wrk -t1 -c1 -d10s --latency -s bench/gateway/post.lua URL -- BODY [KEY]
--
-- BODY is the JSON to POST; KEY, if given, is sent as `Authorization: Bearer KEY`.
-- done() prints a line starting with BENCH_JSON that bench/gateway.py reads (latencies in
-- microseconds; errors.status counts answers with a status of 400 or more).

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  wrk.body = args[1]
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
