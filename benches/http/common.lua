-- Shared by the wrk scripts of benches/http_load.sh: the request (the
-- payments example's JSON charge, as user alice) and a machine-readable
-- summary line for the script to parse.
--
-- Script arguments (after wrk's `--`): a run prefix, unique to the
-- measurement, so that no key is reused across measurements on one server.

local M = {}

M.body = '{"amount_cents":1250,"currency":"EUR"}'

-- The headers of every request; `Idempotency-Key` is set per request.
function M.headers()
  return {
    ["Authorization"] = "Bearer alice",
    ["Content-Type"] = "application/json",
  }
end

-- Numbers each thread in `setup` (the main Lua state), so that each
-- thread's keys carry a prefix of their own.
M.threads = {}
function M.setup(thread)
  table.insert(M.threads, thread)
  thread:set("tid", #M.threads)
end

-- One line: RESULT key=value ..., latencies in microseconds.
function M.done(summary, latency, extra)
  local errors = summary.errors
  local line = string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d"
      .. " err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout)
  io.write(line .. (extra or "") .. "\n")
end

return M
