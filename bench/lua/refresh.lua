-- POST /api/auth/refresh, each response's refresh token spent by the next
-- request. One connection per thread, so every chain is sequential:
-- wrk -t N -c N -s refresh.lua <url> -- <tokens-file> (one refresh token per line)
local tokens = {}
local counter = 0
local token
function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  token = tokens[index]
end
function request()
  return wrk.format("POST", "/api/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refresh_token": "' .. token .. '"}')
end
function response(status, headers, body)
  local next_token = body:match('"refresh_token":"([^"]+)"')
  if next_token then token = next_token end
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
