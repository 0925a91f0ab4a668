-- POST /api/auth/register with a fresh name per request: args are a
-- prefix that differs per run.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local prefix, counter = "r", 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "r"
end

function request()
  counter = counter + 1
  local name = string.format("%s%dx%d", prefix, tid, counter)
  local body = string.format(
    '{"email": "%s@example.com", "username": "%s", "password": "bench-Password-42!"}', name, name)
  return wrk.format("POST", "/api/auth/register", {["Content-Type"] = "application/json"}, body)
end
