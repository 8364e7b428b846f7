-- wrk script for bench/control-heartbeat.ts: POST a JSON body with a bearer token, print one JSON line at the end.
-- WRK_BODY: the JSON body. WRK_REQUESTS: a file of "PATH TOKEN" lines; the requests are built once in init()
-- and handed out round robin, so per-request Lua work is one table lookup (wrk stays cheap).
local reqs = {}
local n = 0
local i = 0

function init(args)
  local body = os.getenv("WRK_BODY") or "{}"
  for line in io.lines(os.getenv("WRK_REQUESTS")) do
    local path, token = line:match("^(%S+) (%S+)$")
    if path then
      n = n + 1
      reqs[n] = wrk.format("POST", path, { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
    end
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"lat_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
