-- GET with a bearer token: wrk -s get.lua <url> -- <token> <path>
local token, path
function init(args)
  token, path = args[1], args[2]
end
function request()
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
