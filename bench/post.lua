-- wrk script: POST the JSON file named by $BENCH_BODY to the URL given on
-- wrk's command line, and print one machine-readable summary line.
--
--   BENCH_BODY=bench/track.json wrk -s bench/post.lua http://127.0.0.1:18080/v1/track
--
-- The request is built once (no request() function), so wrk spends as
-- little CPU as it can per request.

local path = os.getenv("BENCH_BODY") or error("BENCH_BODY is not set")
local f = assert(io.open(path, "rb"))
local body = f:read("*a"):gsub("%s+$", "")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "analytics-node/6.2.0 (ldseg bench)"

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "WRKRESULT requests=%d duration_us=%d bytes=%d status_errors=%d"
        .. " connect_errors=%d read_errors=%d write_errors=%d timeouts=%d"
        .. " p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration, summary.bytes, e.status,
        e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
