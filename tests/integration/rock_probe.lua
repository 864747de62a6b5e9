-- Loads the native module from a rocks tree's lib directory (arg[1]) and reports, one line each,
-- what the verifier answers: a token it mints, then each token on stdin ("TOKEN<TAB>JID" lines,
-- minted elsewhere). Configuration from the environment, as the web app's CLI takes it.
-- Usage: TOKEN_SECRET=... OTP_SEED=... HOST=... lua rock_probe.lua TREE/lib/lua/5.x < tokens
package.path = "";
package.cpath = arg[1] .. "/?.so";
local native = require "prosody_auth_hmac";
local found = package.searchpath and package.searchpath("prosody_auth_hmac", package.cpath) or arg[1];
local jit = rawget(_G, "jit"); -- LuaJIT only
print("loaded", jit and jit.version or _VERSION, native.version, found);
local v = assert(native.verifier({ token_secret = os.getenv("TOKEN_SECRET"), otp_seed = os.getenv("OTP_SEED"),
	host = os.getenv("HOST") }));
local own = assert(v:mint("probe@" .. os.getenv("HOST")));
local function report(label, token, jid)
	local step, reason = v:verify(token, jid);
	print(label, step and "ok" or reason);
end
report("own", own, "probe@" .. os.getenv("HOST"));
report("own-again", own, "probe@" .. os.getenv("HOST"));
local n = 0;
for line in io.lines() do
	n = n + 1;
	local token, jid = line:match("^([^\t]*)\t(.*)$");
	report("line" .. n, token, jid);
end
