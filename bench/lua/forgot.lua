-- POST /api/auth/forgot-password for random addresses of one kind:
-- wrk -s forgot.lua <url> -- <prefix> <count>
-- prefix "user" gives seeded accounts' addresses, "nobody" addresses no account has.
local prefix, count
function init(args)
  prefix, count = args[1], tonumber(args[2])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end
function request()
  local n = math.random(0, count - 1)
  -- Every 50th seeded user is deactivated: it gets no mail either.
  if prefix == "user" and n % 50 == 0 then n = n + 1 end
  local body = string.format('{"email": "%s%d@bench.example"}', prefix, n)
  return wrk.format("POST", "/api/auth/forgot-password", { ["Content-Type"] = "application/json" }, body)
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
