-- PATCH a profile's full_name, a new value each time:
-- wrk -s patch.lua <url> -- <token> <ids-file>: random users of the file
-- (a superuser's token), or one's own row (a file of one's own id).
local token
local ids = {}
local counter = 0
function init(args)
  token = args[1]
  for line in io.lines(args[2]) do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end
function request()
  counter = counter + 1
  local path = "/api/users/" .. ids[math.random(#ids)]
  local body = string.format('{"full_name":"Bench Writer %d-%d"}', math.random(1000000), counter)
  return wrk.format("PATCH", path, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
