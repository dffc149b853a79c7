-- luacheck (Debian's lua-check): `make lint`, and a stage of .ci/run.
-- The code runs on Lua 5.1 to 5.4 and LuaJIT: every standard global is known.
std = "max"
max_line_length = 120
-- a method may leave `self` unused (the CLI's context methods)
self = false
exclude_files = { "build/**", "spec/ts-sdk/**" }

-- OpenResty's ngx is a global of the nginx worker
files["lua/qstash/resty.lua"] = { read_globals = { "ngx" } }
files["lua/qstash/resty/**"] = { read_globals = { "ngx" } }

files["spec/**"] = {
  std = "+busted",
  read_globals = { "ngx" },
  -- tables of cases and expected texts read better on one line each
  max_line_length = false,
}
