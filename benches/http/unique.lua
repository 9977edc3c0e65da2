-- A fresh Idempotency-Key per request: <run>-<thread>-<counter>.
--   wrk -s benches/http/unique.lua URL -- <run prefix>
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup

local prefix, headers, counter

function init(args)
  prefix = (args[1] or "run") .. "-" .. tostring(tid) .. "-"
  headers = common.headers()
  counter = 0
end

function request()
  counter = counter + 1
  headers["Idempotency-Key"] = prefix .. counter
  return wrk.format("POST", nil, headers, common.body)
end

function done(summary, latency, requests)
  common.done(summary, latency)
end
