-- What calling the native verify costs from Lua 5.4, apart from verifying: a call refused at the
-- first byte, next to an empty Lua function call with the same arguments.
--   REPO_ROOT=$PWD lua5.4 benches/lua/call_overhead.lua
local native = assert(package.loadlib(os.getenv("REPO_ROOT") .. "/build/lua5.4/prosody_auth_hmac.so", "luaopen_prosody_auth_hmac"))();
local v = assert(native.verifier{ token_secret = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", otp_seed = "XVGR73KMZH2M4XMY", host = "example.org", token_allow_weak_secrets = true });
local N = 2000000
local t0 = os.clock()
for _ = 1, N do v:verify("x", "a@example.org", 1700000000) end
print(("refused at the first byte, from Lua: %.0f ns"):format((os.clock() - t0) / N * 1e9))
local function empty() end
t0 = os.clock()
for _ = 1, N do empty(v, "x", "a@example.org", 1700000000) end
print(("empty Lua function call: %.0f ns"):format((os.clock() - t0) / N * 1e9))
