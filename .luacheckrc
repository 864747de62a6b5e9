-- luacheck lua spec (make check). Prosody's style: tabs, long log format strings.
std = "lua54"
max_line_length = false
-- Prosody gives a plugin `module` and `prosody`; the shims' public functions are module globals
-- (mod_auth_hmac calls them through module:depends("sasl_hmac")).
files["lua/"] = {
	globals = { "module", "prosody", "new_handler", "failed", "count", "bearer_enabled", "enabled_mechanisms",
		"stream_spent", "failure_clock", "token_clock" },
}
files["tests/integration/plugins/"] = { globals = { "module", "prosody" } };
files["spec/"] = {
	-- the specs run on every interpreter (setfenv on 5.1, jit on LuaJIT)
	std = "max+busted",
	-- the fake module object's methods take self as Prosody's do
	unused_args = false,
}
