-- luarocks --lua-version 5.4 make --tree T
-- installs T/lib/lua/5.4/prosody_auth_hmac.so and T/share/lua/5.4/mod_{auth,sasl}_hmac.lua, which
-- Prosody loads with plugin_paths = { "T/share/lua/5.4" } or installer_plugin_path = "T".
rockspec_format = "3.0"
package = "prosody-auth-hmac"
version = "0.2.0-1"
source = {
	-- The release tarball `make rocks` writes to dist/ (every tracked file); a relative path is
	-- resolved by luarocks against the directory it runs in, so `cd dist && luarocks pack ../<this>`
	-- makes the source rock, which carries the tarball with it.
	url = "prosody-auth-hmac-0.2.0.tar.gz",
}
description = {
	summary = "Sign in to Prosody with short-lived HMAC tokens minted by a web application",
	detailed = [[
		An authentication provider (authentication = "hmac") for Prosody 0.12 and 13 and its SASL
		mechanisms: PLAIN with the token as the password (stock converse.js and any client),
		X-TOKEN (as mod_auth_token), and SASL-HMAC, a challenge-response mechanism that never sends
		the token's secret half and proves the server's knowledge of the token secret (with
		SASL-HMAC-PLUS, its channel-binding variant). Tokens use the collective.converse /
		mod_auth_token format. The checking is done by a native module written in Rust; building it
		from this rock needs cargo (the binary rock needs no compiler).
	]],
	license = "MIT",
	labels = { "prosody", "xmpp", "authentication" },
}
dependencies = {
	"lua >= 5.1, < 5.5",
}
build = {
	type = "make",
	makefile = "Makefile",
	build_target = "rock-build",
	install_target = "rock-install",
	build_variables = { LUA = "$(LUA)" }, -- no CFLAGS: nothing here uses Lua's headers
	install_variables = { LUA = "$(LUA)", LIBDIR = "$(LIBDIR)", LUADIR = "$(LUADIR)" },
}
