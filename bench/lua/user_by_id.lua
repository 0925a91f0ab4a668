-- GET /api/users/{id} over random ids read from a file, one id per line:
-- wrk -s user_by_id.lua <url> -- <token> <ids-file>
local token
local ids = {}
function init(args)
  token = args[1]
  for line in io.lines(args[2]) do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end
function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/users/" .. id, { ["Authorization"] = "Bearer " .. token })
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
