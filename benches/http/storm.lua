-- A storm: every request carries the same Idempotency-Key (the run
-- prefix). Counts the responses by status, those marked
-- `Idempotent-Replayed` (served without running the handler here), and
-- the distinct bodies among the 2xx (one: every client got the same
-- payment).
--   wrk -s benches/http/storm.lua URL -- <run prefix>
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup

local req

function init(args)
  local headers = common.headers()
  headers["Idempotency-Key"] = args[1] or "storm"
  req = wrk.format("POST", nil, headers, common.body)
  statuses = {}
  replayed = 0
  bodies = {}
end

function request()
  return req
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if headers["idempotent-replayed"] or headers["Idempotent-Replayed"] then
    replayed = replayed + 1
  end
  if status >= 200 and status < 300 then
    bodies[body] = true
  end
end

function done(summary, latency, requests)
  local counts, total_replayed, distinct = {}, 0, {}
  for _, thread in ipairs(common.threads) do
    for body in pairs(thread:get("bodies")) do
      distinct[body] = true
    end
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
    total_replayed = total_replayed + thread:get("replayed")
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, status .. ":" .. n)
  end
  table.sort(parts)
  local n = 0
  for _ in pairs(distinct) do
    n = n + 1
  end
  common.done(summary, latency, string.format(" replayed=%d bodies=%d statuses=%s",
    total_replayed, n, table.concat(parts, ",")))
end
