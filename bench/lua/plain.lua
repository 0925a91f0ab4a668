-- A bare GET of the URL given to wrk.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
