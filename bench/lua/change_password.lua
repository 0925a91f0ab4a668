-- POST /api/auth/change-password with a wrong current password, as one
-- account over every connection: wrk -s change_password.lua <url> -- <token>
local token
function init(args)
  token = args[1]
end
function request()
  local body = '{"current_password": "not-the-password-1", "new_password": "Another-horse-battery-7"}'
  return wrk.format("POST", "/api/auth/change-password",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
