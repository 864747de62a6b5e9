-- Token verification cost from Lua 5.4, three implementations side by side in one run:
--   ours:             the native module (what mod_auth_hmac calls)
--   util.hashes:      the same algorithm in Lua on Prosody's C hashes (seed decoded once)
--   mod_auth_token:   prosody-modules' published algorithm: the base32 seed decoded on every call,
--                     a pure-Lua TOTP (HMAC-SHA1) for each step of the window, HMAC-SHA256 in C
-- Each verification is of a fresh, valid token (as in real logins), replay check included.
--   lua5.4 benches/lua/verify_bench.lua [tokens-per-batch] [batches]
package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;
local hashes = require "util.hashes";
local base64 = require "util.encodings".base64;

local repo = os.getenv("REPO_ROOT") or ".";
local native = assert(package.loadlib(repo .. "/build/lua5.4/prosody_auth_hmac.so", "luaopen_prosody_auth_hmac"))();
local N = tonumber(arg[1]) or 2000;
local BATCHES = tonumber(arg[2]) or 30;
local SEED, SECRET, HOST = "XVGR73KMZH2M4XMY", "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "example.org";
local now = os.time();

-- base32 decode, as the otp rock (basexx) does it: a string walk per call
local B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
local function base32_decode(s)
	local bits, out = {}, {};
	for c in s:upper():gsub("=", ""):gmatch(".") do
		local v = B32:find(c, 1, true) - 1;
		for i = 4, 0, -1 do bits[#bits+1] = (v >> i) & 1; end
	end
	for i = 1, #bits - 7, 8 do
		local byte = 0;
		for j = 0, 7 do byte = byte * 2 + bits[i+j]; end
		out[#out+1] = string.char(byte);
	end
	return table.concat(out);
end

-- pure-Lua SHA-1 and HMAC-SHA1 (what the otp rock's sha1 dependency does)
local function sha1(msg)
	local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0;
	local ml = #msg * 8;
	msg = msg .. "\128" .. string.rep("\0", (55 - #msg) % 64) .. string.pack(">I8", ml);
	local w = {};
	local function rol(x, n) return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF; end
	for chunk = 1, #msg, 64 do
		for i = 0, 15 do w[i] = string.unpack(">I4", msg, chunk + i * 4); end
		for i = 16, 79 do w[i] = rol(w[i-3] ~ w[i-8] ~ w[i-14] ~ w[i-16], 1); end
		local a, b, c, d, e = h0, h1, h2, h3, h4;
		for i = 0, 79 do
			local f, k;
			if i < 20 then f, k = (b & c) | ((~b) & d), 0x5A827999;
			elseif i < 40 then f, k = b ~ c ~ d, 0x6ED9EBA1;
			elseif i < 60 then f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC;
			else f, k = b ~ c ~ d, 0xCA62C1D6; end
			local t = (rol(a, 5) + (f & 0xFFFFFFFF) + e + k + w[i]) & 0xFFFFFFFF;
			e, d, c, b, a = d, c, rol(b, 30), a, t;
		end
		h0, h1, h2, h3, h4 = (h0 + a) & 0xFFFFFFFF, (h1 + b) & 0xFFFFFFFF, (h2 + c) & 0xFFFFFFFF,
			(h3 + d) & 0xFFFFFFFF, (h4 + e) & 0xFFFFFFFF;
	end
	return string.pack(">I4I4I4I4I4", h0, h1, h2, h3, h4);
end
local function xor_key(key, byte)
	return (key:gsub(".", function(c) return string.char(c:byte() ~ byte); end));
end
local function lua_hmac_sha1(key, msg)
	if #key > 64 then key = sha1(key); end
	key = key .. string.rep("\0", 64 - #key);
	return sha1(xor_key(key, 0x5c) .. sha1(xor_key(key, 0x36) .. msg));
end

local function totp(hmac, key, step)
	local mac = hmac(key, string.pack(">I8", step));
	local offset = (mac:byte(20) & 0x0F) + 1;
	local code = (string.unpack(">I4", mac, offset) & 0x7FFFFFFF) % 100000000;
	return ("%08d"):format(code);
end

local function split(token)
	local public, b64 = token:match("^(%d+) (%S+)$");
	return public, b64;
end

-- util.hashes baseline: seed decoded once, C HMACs, window current-first, table replay cache
local seed_bytes = base32_decode(SEED);
local function make_hashes_baseline()
	local seen = {};
	return function(_, token, jid, t)
		local public, b64 = split(token);
		if not public then return nil, "malformed"; end
		local mac = base64.decode(b64);
		if hashes.hmac_sha256(SECRET, public .. jid) ~= mac then return nil, "bad-signature"; end
		local otp, step = public:sub(1, 8), t // 30;
		local ok = false;
		for _, s in ipairs({ step, step - 1, step + 1 }) do
			if totp(hashes.hmac_sha1, seed_bytes, s) == otp then ok = true; break; end
		end
		if not ok then return nil, "expired"; end
		local key = jid .. "\0" .. public;
		if seen[key] then return nil, "replayed"; end
		seen[key] = true;
		return step;
	end;
end

-- mod_auth_token's algorithm: seed base32-decoded per call, pure-Lua TOTP for the window
local function make_auth_token_baseline()
	local nonces = {};
	return function(_, token, jid, t)
		local public, b64 = split(token);
		if not public then return nil, "malformed"; end
		local otp, nonce = public:sub(1, 8), public:sub(9);
		local key = base32_decode(SEED);
		local step, ok = t // 30, false;
		for s = step - 1, step + 1 do
			if totp(lua_hmac_sha1, key, s) == otp then ok = true; end
		end
		if not ok then return nil, "expired"; end
		if hashes.hmac_sha256(SECRET, otp .. nonce .. jid) ~= base64.decode(b64) then return nil, "bad-signature"; end
		local cache = nonces[jid];
		if cache and cache.otp == otp and cache[nonce] then return nil, "replayed"; end
		if not cache or cache.otp ~= otp then cache = { otp = otp }; nonces[jid] = cache; end
		cache[nonce] = true;
		return step;
	end;
end

local minter = assert(native.verifier({ token_secret = SECRET, otp_seed = SEED, host = HOST, token_allow_weak_secrets = true }));
local function batch_tokens(tag)
	local jids, tokens = {}, {};
	for i = 1, N do
		jids[i] = ("u%s%d@%s"):format(tag, i, HOST);
		tokens[i] = minter:mint(jids[i], now);
	end
	return jids, tokens;
end

local clock = os.clock;
local function run(name, verify_factory)
	local per_call = {};
	-- each implementation is called once per token, the way its users call it: ours as the method
	-- v:verify(token, jid, now) (that is, verify(v, ...)), the Lua baselines as plain functions
	local verify, self = verify_factory();
	for b = 1, BATCHES do
		local jids, tokens = batch_tokens(name:sub(1, 3) .. b);
		local t0 = clock();
		for i = 1, N do
			local ok, err = verify(self, tokens[i], jids[i], now);
			if not ok then error(name .. ": " .. tostring(err)); end
		end
		per_call[#per_call+1] = (clock() - t0) / N * 1e6;
	end
	table.sort(per_call);
	local median = per_call[(#per_call + 1) // 2];
	print(("%-34s median %8.3f us   p10 %8.3f   p90 %8.3f   (%d batches x %d tokens)"):format(name, median,
		per_call[math.max(1, #per_call // 10)], per_call[math.max(1, #per_call * 9 // 10)], BATCHES, N));
	return median;
end

print(("Lua %s, %s; one fresh valid token per verification, replay check included"):format(_VERSION, os.date("!%Y-%m-%d")));
local ours = run("ours (native module)", function()
	local v = assert(native.verifier({ token_secret = SECRET, otp_seed = SEED, host = HOST,
		token_replay_cache_size = N * BATCHES + 10, token_replay_user_quota = N * BATCHES + 10,
		token_allow_weak_secrets = true }));
	return v.verify, v;
end);
local baseline = run("util.hashes, same algorithm", make_hashes_baseline);
local auth_token = run("mod_auth_token algorithm", make_auth_token_baseline);
print(("ratio util.hashes / ours:     %6.1fx"):format(baseline / ours));
print(("ratio mod_auth_token / ours:  %6.1fx"):format(auth_token / ours));
