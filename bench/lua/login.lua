-- POST /api/auth/login as random seeded users (all share one password):
-- wrk -s login.lua <url> -- <users> <password>
local users, password
function init(args)
  users, password = tonumber(args[1]), args[2]
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end
function request()
  local n = math.random(0, users - 1)
  -- Every 50th seeded user is deactivated: its login would fail.
  if n % 50 == 0 then n = n + 1 end
  local body = string.format('{"email": "user%d@bench.example", "password": "%s"}', n, password)
  return wrk.format("POST", "/api/auth/login", { ["Content-Type"] = "application/json" }, body)
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
