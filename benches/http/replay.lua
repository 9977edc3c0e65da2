-- Requests over a fixed set of keys, <run>-<i> for i in 0..KEYS-1, each
-- thread starting at its own offset. Run once to warm (every key sent at
-- least once: the script checks the handler's count), then again: every
-- request is a replay.
--   wrk -s benches/http/replay.lua URL -- <run prefix> [keys, default 1000]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup

local prefix, headers, keys, counter

function init(args)
  prefix = (args[1] or "run") .. "-"
  keys = tonumber(args[2] or "1000")
  headers = common.headers()
  counter = (tid - 1) * 7919
end

function request()
  headers["Idempotency-Key"] = prefix .. (counter % keys)
  counter = counter + 1
  return wrk.format("POST", nil, headers, common.body)
end

function done(summary, latency, requests)
  common.done(summary, latency)
end
