-- mod_auth_hmac and mod_sasl_hmac loaded as Prosody loads a plugin (a module environment with the
-- configuration), then driven through Prosody's real util.sasl and the way mod_saslauth drives a
-- SASL handler.
local env = require "spec.helpers.env";

local HOST = "example.org";

local function base_options(extra)
	local doc = env.vectors();
	local o = { token_secret = { doc.secrets[1], doc.secrets[2] }, otp_seed = doc.otp_seed,
		auth_hmac_library = env.library_path, token_allow_weak_secrets = true }; -- the vectors' example values
	for k, v in pairs(extra or {}) do o[k] = v; end
	return o;
end

-- Loads both shims as a host with authentication = "hmac" does (unless `options` say otherwise).
local function load(options, stores)
	if options.authentication == nil then
		local o = { authentication = "hmac" };
		for k, v in pairs(options) do o[k] = v; end
		options = o;
	end
	-- as Prosody does: mod_auth_hmac first (usermanager loads the provider), which loads the native
	-- library and then mod_sasl_hmac through module:depends
	local sasl_env, sasl_seen;
	local deps = setmetatable({}, { __index = function(_, name)
		if name == "http" then return {}; end -- token_signout's endpoint
		if name ~= "sasl_hmac" then return nil; end
		sasl_env, sasl_seen = env.load_module("sasl_hmac", HOST, options);
		return sasl_env;
	end });
	local auth_env, auth_seen = env.load_module("auth_hmac", HOST, options, deps, stores);
	auth_seen.env, auth_seen.sasl_env = auth_env, sasl_env;
	return auth_seen.provided.auth, sasl_seen, auth_seen;
end

local function defaults_max_failures()
	return env.native().defaults.token_max_failures;
end

local function minter(provider)
	return function(user, now) return assert(provider.get_verifier():mint(user .. "@" .. HOST, now)); end;
end

local function load_error(options)
	local ok, err = pcall(load, options);
	assert.is_false(ok);
	return tostring(err);
end

local function tmpfile(contents, mode)
	local path = os.tmpname();
	local f = assert(io.open(path, "wb"));
	f:write(contents);
	f:close();
	if mode then os.execute("chmod " .. mode .. " " .. path); end
	return path;
end

-- One login on handler `h` with `token` for `user` by `mech`: PLAIN and X-TOKEN send it whole;
-- SASL-HMAC sends OTP‖NONCE, then the client proof over the exchange (docs/sasl-hmac.md).
-- Returns the final status, condition and text.
local function exchange(h, mech, user, token)
	assert.is_true(h:select(mech));
	if mech ~= "SASL-HMAC" then
		return h:process("\0" .. user .. "\0" .. token);
	end
	local sha256 = require "util.hashes".hmac_sha256;
	local base64 = require "util.encodings".base64;
	local public, b64 = token:match("^(%d+) (.+)$");
	local cfm = "\0" .. user .. "\0" .. public;
	local _, sn = h:process(cfm);
	return h:process(sha256(base64.decode(b64), "SASL-HMAC client\0" .. cfm .. "\0" .. sn));
end

describe("mod_auth_hmac #prosody", function()
	-- Listed in the global modules_enabled, both modules load on every VirtualHost: on a host with
	-- another provider (or Prosody's default) they must load cleanly without any token settings,
	-- provide nothing, and say once why they are idle.
	it("is idle, needs no secrets and provides nothing on a host whose authentication is not hmac", function()
		for _, authentication in ipairs({ "internal_hashed", "token", "HMAC", false }) do
			local options = { authentication = authentication or nil };
			local sasl_env, sasl_seen = env.load_module("sasl_hmac", HOST, options);
			local _, auth_seen = env.load_module("auth_hmac", HOST, options, { sasl_hmac = sasl_env });
			assert.is_nil(auth_seen.provided.auth);
			assert.is_nil(sasl_env.new_handler);
			assert.are.equal(1, #auth_seen.logs);
			local line = auth_seen.logs[1];
			assert.are.equal("info", line.level);
			local shown = authentication or "internal_hashed";
			assert.truthy(line.text:find(("Not active on %s: its authentication is \"%s\""):format(HOST, shown), 1, true), line.text);
			assert.truthy(line.text:find('set authentication = "hmac" for this host', 1, true), line.text);
			for _, l in ipairs(sasl_seen.logs) do assert.are.equal("debug", l.level); end
		end
		-- the same options with authentication = "hmac" and no secrets: the load error names the option
		local ok, err = pcall(load, { authentication = "hmac", auth_hmac_library = env.library_path });
		assert.is_false(ok);
		assert.truthy(tostring(err):find("token_secret is not set", 1, true), tostring(err));
	end);

	-- one info line per host once it is ready: the library's version and the mechanisms enabled there
	it("says once, at info, that it is ready, with the version and the enabled mechanisms", function()
		local native = env.native();
		for _, case in ipairs({ { nil, table.concat(native.mechanisms, " ") }, { { "SASL-HMAC", "PLAIN" }, "PLAIN SASL-HMAC" } }) do
			local _, _, auth_seen = load(base_options({ token_mechanisms = case[1] }));
			local ready = {};
			for _, l in ipairs(auth_seen.logs) do
				if l.text:find("^Ready on ") then ready[#ready+1] = l; end
			end
			assert.are.equal(1, #ready);
			assert.are.equal("info", ready[1].level);
			assert.are.equal(("Ready on %s: prosody-auth-hmac %s, mechanisms %s"):format(HOST, native.version, case[2]), ready[1].text);
		end
	end);

	it("provides an auth provider that verifies tokens once", function()
		local provider = load(base_options());
		local mint = minter(provider);
		local t = mint("alice");
		assert.is_true(provider.test_password("alice", t));
		assert.same({ nil, "replayed" }, { provider.test_password("alice", t) });
		assert.same({ nil, "bad-signature" }, { provider.test_password("bob", mint("alice")) });
		assert.same({ nil, "malformed" }, { provider.test_password("alice", "") });
	end);

	-- test_password follows the mechanisms' rule: the signature covers the nodeprep'd JID, and the
	-- name as given only under token_jid_as_sent.
	it("verifies test_password for the nodeprep'd JID, the name as given only when asked", function()
		local strict = load(base_options());
		local lax = load(base_options({ token_jid_as_sent = true }));
		for _, provider in ipairs({ strict, lax }) do
			local v = provider.get_verifier();
			assert.is_true(provider.test_password("Alice", v:mint("alice@" .. HOST)));
			assert.is_true(provider.test_password("\239\188\161lice", v:mint("alice@" .. HOST))); -- fullwidth A
			assert.is_true(provider.user_exists("alice"));
			assert.same({ nil, "malformed" }, { provider.test_password("al ice", v:mint("alice@" .. HOST)) });
			-- a nonce digit moved into the username: user 5's token for user 35
			local public, mac = v:mint("5@" .. HOST):match("^(%d+) (.+)$");
			assert.same({ nil, "malformed" }, { provider.test_password(public:sub(-1) .. "5", public:sub(1, -2) .. " " .. mac) });
		end
		assert.same({ nil, "bad-signature" }, { strict.test_password("Alice", strict.get_verifier():mint("Alice@" .. HOST)) });
		assert.is_true(lax.test_password("Alice", lax.get_verifier():mint("Alice@" .. HOST)));
		local nonce20 = load(base_options({ token_nonce_digits = 20 }));
		local t = nonce20.get_verifier():mint("bob@" .. HOST);
		assert.are.equal(8 + 20 + 1 + 44, #t);
		assert.is_true(nonce20.test_password("bob", t));
		assert.same({ nil, "malformed" }, { strict.test_password("bob", nonce20.get_verifier():mint("bob@" .. HOST)) });
	end);

	-- test_password (mod_legacyauth, mod_rest, ...) is a login path like the others: one log line and
	-- an event per refusal, and a bearer use of the whole token only while PLAIN or X-TOKEN is offered.
	it("logs test_password refusals and refuses bearer use when only SASL-HMAC is enabled", function()
		local provider, seen = load(base_options());
		local v = provider.get_verifier();
		local before = #seen.logs;
		assert.same({ nil, "bad-signature" }, { provider.test_password("tom", v:mint("ann@" .. HOST)) });
		local line = seen.logs[#seen.logs];
		assert.are.equal(before + 1, #seen.logs);
		assert.truthy(line.text:find("Failed test_password token login for tom@example.org from (unknown address): bad-signature", 1, true), line.text);
		assert.are.equal("token-authentication-failure", seen.events[#seen.events].name);
		assert.same({ nil, "malformed" }, { provider.test_password("tom\226\128\174x", "1 x") });
		assert.truthy(seen.logs[#seen.logs].text:find("tom\\u{202e}x@example.org", 1, true), seen.logs[#seen.logs].text);
		local pinned, pinned_seen = load(base_options({ token_mechanisms = { "SASL-HMAC" } }));
		assert.same({ nil, "bearer-disabled" }, { pinned.test_password("tom", pinned.get_verifier():mint("tom@" .. HOST)) });
		assert.truthy(pinned_seen.logs[#pinned_seen.logs].text:find(": bearer-disabled", 1, true));
		-- no session to count per stream: the "(unknown address)" budget of a minute, then every
		-- failure not logged is counted in one summary line when the minute is over
		local flooded, flood_seen, flood_auth = load(base_options({ token_max_failures = 3 }));
		local clock = 1700000040;
		flood_auth.sasl_env.failure_clock = function() return clock; end
		local fv = flooded.get_verifier();
		local start = #flood_seen.logs;
		for _ = 1, 200 do flooded.test_password("tom", fv:mint("ann@" .. HOST)); end
		local per_minute = env.native().defaults.token_max_failures_per_address;
		assert.are.equal(per_minute, #flood_seen.logs - start);
		clock = clock + 60;
		for _, timer in ipairs(flood_seen.timers) do timer(); end
		assert.are.equal(per_minute + 1, #flood_seen.logs - start);
		assert.are.equal(("%d more failed token logins from (unknown address) in the minute before were not logged "
			.. "(over %d a minute from one address)"):format(200 - per_minute, per_minute), flood_seen.logs[#flood_seen.logs].text);
		local allowed = load(base_options({ token_mechanisms = { "SASL-HMAC" }, token_test_password = true }));
		assert.is_true(allowed.test_password("tom", allowed.get_verifier():mint("tom@" .. HOST)));
	end);

	-- One clock for every login path (token_clock, which live tests pin through the admin shell):
	-- test_password verifies at the time the mechanisms do, not at the system clock.
	it("verifies test_password and the mechanisms at the token clock", function()
		local provider, _, auth_seen = load(base_options());
		local v = provider.get_verifier();
		local pinned = os.time() + 3600; -- outside every window of the system clock, within the day searched
		auth_seen.sasl_env.token_clock = function() return pinned; end
		assert.is_true(provider.test_password("tom", v:mint("tom@" .. HOST, pinned)));
		local h = provider.get_sasl_handler({ secure = true });
		assert.are.equal("success", (exchange(h, "PLAIN", "ann", v:mint("ann@" .. HOST, pinned))));
		assert.same({ nil, "expired" }, { provider.test_password("una", v:mint("una@" .. HOST)) });
		h = provider.get_sasl_handler({ secure = true });
		local status, condition = exchange(h, "PLAIN", "una", v:mint("una@" .. HOST));
		assert.same({ "failure", "credentials-expired" }, { status, condition });
	end);

	-- A FAST token (mod_sasl2_fast) obtained with one token login stays valid for weeks.
	it("warns once when mod_sasl2_fast is enabled on its host", function()
		local function warnings(seen)
			local n = 0;
			for _, l in ipairs(seen.logs) do
				if l.level == "warn" and l.text:find("mod_sasl2_fast is loaded on " .. HOST, 1, true) then n = n + 1; end
			end
			return n;
		end
		local _, _, plain = load(base_options());
		assert.are.equal(0, warnings(plain));
		plain.global_hooks["module-loaded"]({ module = "sasl2_fast", host = "elsewhere.org" });
		assert.are.equal(0, warnings(plain));
		plain.global_hooks["module-loaded"]({ module = "sasl2_fast", host = HOST });
		assert.are.equal(1, warnings(plain));
		local _, _, fast = load(base_options({ modules_enabled = { "roster", "sasl2", "sasl2_fast" } }));
		assert.are.equal(1, warnings(fast));
		fast.global_hooks["module-loaded"]({ module = "sasl2_fast", host = HOST });
		assert.are.equal(1, warnings(fast), "once");
	end);

	it("serves Prosody's own PLAIN (util.sasl) through test_password", function()
		local sasl = require "util.sasl";
		local provider = load(base_options());
		local mint = minter(provider);
		local profile = { plain_test = function(_, username, password)
			return provider.test_password(username, password), true;
		end };
		local handler = sasl.new(HOST, profile);
		assert.is_true(handler:select("PLAIN"));
		assert.are.equal("success", (handler:process("\0alice\0" .. mint("alice"))));
		handler = handler:clean_clone();
		assert.is_true(handler:select("PLAIN"));
		local status, condition = handler:process("\0alice\0" .. mint("eve"));
		assert.are.equal("failure", status);
		assert.are.equal("not-authorized", condition);
	end);

	it("accepts every secret of a rotation list", function()
		local doc = env.vectors();
		local provider = load(base_options({ token_secret = { "new-secret-new-secret-new-secret!", doc.secrets[1] } }));
		-- the Python-minted vector (old secret) still verifies ...
		local case = doc.cases[1];
		local v = provider.get_verifier();
		assert.are.equal(case.step, (v:verify(case.token, case.jid, case.now)));
		-- ... and minting uses the first secret
		local mine = provider.get_verifier():mint("alice@" .. HOST);
		local old_only = load(base_options({ token_secret = doc.secrets[1] }));
		assert.same({ nil, "bad-signature" }, { old_only.test_password("alice", mine) });
	end);

	it("reads secrets from files, without the trailing newline", function()
		local doc = env.vectors();
		local sf = tmpfile(doc.secrets[1] .. "\n", "600");
		local of = tmpfile(doc.otp_seed .. "\n", "600");
		local provider = load({ token_secret_file = sf, otp_seed_file = of, auth_hmac_library = env.library_path,
			token_allow_weak_secrets = true });
		local case = doc.cases[1];
		assert.are.equal(case.step, (provider.get_verifier():verify(case.token, case.jid, case.now)));
		os.remove(sf); os.remove(of);
	end);

	it("refuses to load with a message that names the option, never the secret", function()
		local doc = env.vectors();
		local cases = {
			{ function(o) o.token_secret = false; end, "token_secret must be a string or a list of strings" },
			{ function(o) o.token_secret = nil; end, "token_secret is not set" },
			{ function(o) o.otp_seed = "0189!"; end, "otp_seed is not valid base32" },
			{ function(o) o.otp_seed = nil; end, "otp_seed is not set" },
			{ function(o) o.otp_digits = 10; end, "otp_digits must be between 6 and 8" },
			{ function(o) o.otp_step = 0; end, "otp_step must be between 1 and 86400" },
			{ function(o) o.token_replay_cache_size = 0; end, "token_replay_cache_size must be at least 1" },
			{ function(o) o.token_nonce_digits = 8; end, "mod_auth_hmac: token_nonce_digits must be between 16 and 64, not 8" },
			{ function(o) o.token_jid_as_sent = "sometimes"; end, "mod_auth_hmac: token_jid_as_sent must be true or false" },
			{ function(o) o.token_secret_file = "/nonexistent/secret"; end, "token_secret_file: cannot read /nonexistent/secret" },
			-- the secret itself where a path belongs: said, never shown
			{ function(o) o.token_secret_file = doc.secrets[1]; end, "token_secret_file: cannot read the file it names" },
			{ function(o) o.token_user_exists = "sometimes"; end, "token_user_exists must be" },
			{ function(o) o.token_mechanisms = { "PLAIN", "DIGEST-MD5" }; end, "token_mechanisms: unknown mechanism DIGEST-MD5" },
		};
		for _, c in ipairs(cases) do
			local options = base_options();
			c[1](options);
			local err = load_error(options);
			assert.truthy(err:find(c[2], 1, true), ("expected %q in %q"):format(c[2], err));
			assert.falsy(err:find(doc.secrets[1], 1, true));
		end
	end);

	local function warnings_of(seen)
		local out = {};
		for _, l in ipairs(seen.logs) do
			if l.level == "warn" then out[#out+1] = l.text; end
		end
		return table.concat(out, "\n");
	end

	it("warns about short secrets and secret files others can read, without naming the secret", function()
		local doc = env.vectors();
		local open_file = tmpfile(doc.secrets[1] .. "\n", "644");
		local _, _, auth_seen = load(base_options({ token_secret = "twenty-bytes-secret!", token_secret_file = open_file }));
		local text = warnings_of(auth_seen);
		assert.truthy(text:find("token_secret #1 is only 20 bytes", 1, true), text);
		assert.truthy(text:find("token_secret_file: " .. open_file .. " is readable by others", 1, true), text);
		assert.falsy(text:find("twenty-bytes-secret!", 1, true)); -- the secret's value
		assert.falsy(text:find(doc.secrets[1], 1, true));
		os.remove(open_file);
		-- a 600 file and a long secret: no warning
		local private = tmpfile(doc.secrets[1], "600");
		_, _, auth_seen = load(base_options({ token_secret = nil, token_secret_file = private }));
		assert.are.equal("", warnings_of(auth_seen));
		os.remove(private);
	end);

	-- Debian's convention for secrets is root:prosody 0640: the group is Prosody's own, so no warning
	-- (a "chmod 600" on a root-owned file would lock Prosody out). Another group that can read it is.
	it("accepts a 0640 secret file in Prosody's group and warns about one in another group", function()
		local doc = env.vectors();
		local pposix = require "util.pposix";
		local own = tmpfile(doc.secrets[1], "640");
		os.execute(("chgrp %d %s"):format(pposix.getgid(), own));
		local _, _, seen = load(base_options({ token_secret = nil, token_secret_file = own }));
		assert.are.equal("", warnings_of(seen));
		local foreign = tmpfile(doc.secrets[1], "640");
		local other_gid = pposix.getgid() == 65534 and 0 or 65534; -- nogroup
		assert.is_true(os.execute(("chgrp %d %s"):format(other_gid, foreign)) == true or pposix.getuid() ~= 0);
		if pposix.getuid() == 0 then -- only root can hand a file to another group
			_, _, seen = load(base_options({ token_secret = nil, token_secret_file = foreign }));
			local text = warnings_of(seen);
			-- one warning, about that file, naming the foreign group and Prosody's, never advising chmod 600
			assert.are.equal(1, select(2, text:gsub("[^\n]+", "")), text);
			assert.truthy(text:find(foreign, 1, true), text);
			for _, gid in ipairs({ other_gid, pposix.getgid() }) do
				assert.truthy(text:find("%f[%d]" .. gid .. "%f[%D]"), gid .. ": " .. text);
			end
			assert.falsy(text:find("chmod 600", 1, true));
		end
		os.remove(own); os.remove(foreign);
	end);

	it("refuses short and published secrets, and a lifetime over 15 minutes, unless told otherwise", function()
		local fresh_seed = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"; -- not a published value
		local good = { token_secret = "0123456789abcdef0123", otp_seed = fresh_seed, auth_hmac_library = env.library_path };
		local function with(extra)
			local o = {};
			for k, v in pairs(good) do o[k] = v; end
			for k, v in pairs(extra) do o[k] = v; end
			return o;
		end
		assert.is_table((load(good)));
		local cases = {
			{ { token_secret = "fifteen-bytes!!" }, "token_secret must be at least 16 bytes, not 15" },
			{ { token_secret = { "0123456789abcdef0123", "short" } }, "token_secret must be at least 16 bytes, not 5" },
			{ { token_secret = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7" }, "token_secret is an example value printed in documentation" },
			{ { token_secret = "XVGR73KMZH2M4XMY" }, "token_secret is an example value printed in documentation" },
			{ { otp_seed = "XVGR73KMZH2M4XMY" }, "otp_seed is an example value printed in documentation" },
			{ { otp_seed = "xvgr73kmzh2m4xmy==" }, "otp_seed is an example value printed in documentation" },
			{ { otp_seed = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7" }, "otp_seed is an example value printed in documentation" },
			{ { otp_step = 301, otp_skew = 1 }, "otp_step × (2 × otp_skew + 1) is 903 s, longer than the 900 s" },
			{ { otp_step = 30, otp_skew = 10 }, "otp_step × (2 × otp_skew + 1) is 630 s" },
		};
		for _, c in ipairs(cases) do
			local ok, err = pcall(load, with(c[1]));
			if c[2]:find("630 s", 1, true) then
				assert.is_true(ok, tostring(err)); -- 630 s is within the bound
			else
				assert.is_false(ok, c[2]);
				assert.truthy(tostring(err):find("mod_auth_hmac: " .. c[2], 1, true), tostring(err));
				assert.falsy(tostring(err):find("0123456789abcdef0123", 1, true));
			end
		end
		assert.is_table((load(with({ token_secret = "short", otp_seed = "XVGR73KMZH2M4XMY", token_allow_weak_secrets = true }))));
		assert.is_table((load(with({ otp_step = 3600, token_allow_long_lifetime = true }))));
	end);

	-- A token used just before a clean stop or a module reload is still refused after it.
	it("keeps the replay cache across a reload and a clean stop", function()
		for _, how in ipairs({ "unload", "server-stopping" }) do
			local stores = {};
			local first, _, seen = load(base_options(), stores);
			local used = first.get_verifier():mint("rita@" .. HOST);
			assert.is_true(first.test_password("rita", used));
			if how == "unload" then seen.env.module.unload(); else seen.global_hooks["server-stopping"](); end
			local second = load(base_options(), stores);
			assert.same({ nil, "replayed" }, { second.test_password("rita", used) }, how);
			assert.is_true(second.test_password("rita", second.get_verifier():mint("rita@" .. HOST)));
			-- taken back once: at load the running marker replaces it (a third start without a stop is a crash)
			local third = load(base_options(), stores);
			assert.are.equal(0, third.get_verifier():stats().replay_entries);
		end
		-- a state saved under another otp_step is refused and handled as an unclean stop: tokens that could
		-- have been used before are refused for at most otp_step × (otp_skew + 1) s, fresh ones after that
		local stores = {};
		local first, _, seen = load(base_options(), stores);
		assert.is_true(first.test_password("uma", first.get_verifier():mint("uma@" .. HOST)));
		seen.env.module.unload();
		local slower, _, slow_seen = load(base_options({ otp_step = 60 }), stores);
		local v = slower.get_verifier();
		local now = os.time();
		local ends = now - now % 60 + 120;
		assert.same({ nil, "unclean-restart" }, { slower.test_password("uma", v:mint("uma@" .. HOST)) });
		assert.is_number((v:verify(v:mint("uma@" .. HOST, ends), "uma@" .. HOST, ends)));
		local warning;
		for _, l in ipairs(slow_seen.logs) do if l.level == "warn" and l.text:find("unclean-restart", 1, true) then warning = l.text; end end
		assert.truthy(warning and warning:find("saved under another otp_step", 1, true), warning);
		-- the same for another otp_skew: the saved entries expire when the old window closes, not the new one
		stores = {};
		first, _, seen = load(base_options(), stores);
		local used = first.get_verifier():mint("uma@" .. HOST);
		assert.is_true(first.test_password("uma", used));
		seen.env.module.unload();
		local wider, _, wide_seen = load(base_options({ otp_skew = 4 }), stores);
		assert.same({ nil, "unclean-restart" }, { wider.test_password("uma", used) });
		warning = nil;
		for _, l in ipairs(wide_seen.logs) do if l.level == "warn" and l.text:find("unclean-restart", 1, true) then warning = l.text; end end
		assert.truthy(warning and warning:find("saved under another otp_skew", 1, true), warning);
		-- a state with the clock far ahead, or unreadable, or of another kind: no lock-out past the same bound
		for _, stored in ipairs({
			{ format = 3, otp_step = 30, otp_skew = 1, high_water = math.floor(now / 30) + 2880, quarantine = 0,
				entries = { ("ab"):rep(16) .. " " .. (math.floor(now / 30) + 2881) }, mac = ("00"):rep(32) },
			{ high_water = 1, entries = { "zz 5", 7 } },
			"nope", 42, true,
		}) do
			local fresh = load(base_options()).get_verifier();
			local start = fresh:restore_replay_state(stored, now);
			fresh:running_state_stored(true);
			assert.are.equal("unclean", start.outcome, tostring(stored));
			assert.is_string(start.refused);
			assert.is_true(start.quarantine_ends <= now + 60);
			local later = start.quarantine_ends;
			assert.is_number((fresh:verify(fresh:mint("uma@" .. HOST, later), "uma@" .. HOST, later)));
		end
	end);

	-- kill -9 leaves the running marker: the next start refuses the tokens used before (item 1 of #22)
	it("refuses the tokens used before a crash, and says so once", function()
		local stores = {};
		local first = load(base_options(), stores);
		local used = {};
		for i = 1, 5 do
			used[i] = first.get_verifier():mint("vic" .. i .. "@" .. HOST);
			assert.is_true(first.test_password("vic" .. i, used[i]));
		end
		assert.is_true(stores.auth_hmac_replay.state.running, "a running server leaves the marker");
		-- no unload, no server-stopping: the process died
		local second, _, seen = load(base_options(), stores);
		for i = 1, 5 do
			assert.same({ nil, "unclean-restart" }, { second.test_password("vic" .. i, used[i]) }, i);
		end
		local warned = 0;
		for _, l in ipairs(seen.logs) do
			if l.level == "warn" and l.text:find("did not stop cleanly", 1, true) then warned = warned + 1; end
		end
		assert.are.equal(1, warned);
		assert.is_true(stores.auth_hmac_replay.state.running, "the new run leaves its own marker");
	end);

	-- After a crash every client retries with tokens the quarantine refuses: the server's trouble,
	-- not theirs. A NAT full of them keeps its failure budget for what clients do wrong.
	it("charges no address for the server's own refusals (unclean-restart), only for the client's", function()
		local stores = {};
		local first = load(base_options(), stores);
		local per_minute = env.native().defaults.token_max_failures_per_address;
		local tokens = {};
		for i = 1, per_minute + 5 do tokens[i] = first.get_verifier():mint("nat" .. i .. "@" .. HOST); end
		local second, sasl_seen, auth_seen = load(base_options(), stores); -- no clean stop: a crash
		auth_seen.sasl_env.failure_clock = function() return 1700000100; end
		local closed = 0;
		local function attempt(user, token)
			local session = { secure = true, ip = "192.0.2.60", close = function() closed = closed + 1; end };
			local h = second.get_sasl_handler(session);
			assert.is_true(h:select("PLAIN"));
			local status, condition = h:process("\0" .. user .. "\0" .. token);
			local timers = sasl_seen.timers;
			while #timers > 0 do table.remove(timers)(); end -- the stream closes after the reply
			return status, condition;
		end
		local function lines(needle)
			local n = 0;
			for _, l in ipairs(sasl_seen.logs) do if l.text:find(needle, 1, true) then n = n + 1; end end
			return n;
		end
		for i = 1, per_minute + 5 do
			assert.same({ "failure", "temporary-auth-failure" }, { attempt("nat" .. i, tokens[i]) }, i);
		end
		assert.are.equal(per_minute + 5, lines("from 192.0.2.60: unclean-restart"));
		assert.are.equal(0, closed);
		-- the address's budget is whole: a client's own failure is logged, its stream not closed early
		assert.are.equal("failure", (attempt("nat1", "1 x")));
		assert.are.equal(1, lines("Failed PLAIN token login for nat1@example.org from 192.0.2.60: malformed"));
		-- one line per failure and nothing else about the address (no closing, no summary), whatever its wording
		assert.are.equal(per_minute + 6, lines("192.0.2.60"));
		assert.are.equal(0, closed);
	end);

	-- Without the marker in storage a crash would look like the clean stop before it, and the tokens
	-- of this run would be accepted again after it: none is accepted until the marker is written.
	it("refuses token logins until the running marker is stored, and retries on a timer", function()
		local stores = { fail_writes = { auth_hmac_replay = true } };
		local provider, _, seen = load(base_options(), stores);
		local v = provider.get_verifier();
		assert.same({ nil, "unclean-restart" }, { provider.test_password("xia", v:mint("xia@" .. HOST)) });
		assert.are.equal(1, #seen.timers, "one retry timer");
		local retry = seen.timers[1];
		assert.is_number(retry(), "still failing: retried again");
		assert.same({ nil, "unclean-restart" }, { provider.test_password("xia", v:mint("xia@" .. HOST)) });
		stores.fail_writes.auth_hmac_replay = nil;
		assert.is_nil(retry(), "written: no more retries");
		assert.is_true(stores.auth_hmac_replay.state.running);
		assert.is_true(provider.test_password("xia", v:mint("xia@" .. HOST)));
		local errors, recovered = 0, 0;
		for _, l in ipairs(seen.logs) do
			if l.level == "error" and l.text:find("mark the replay cache", 1, true) then errors = errors + 1; end
			if l.level == "info" and l.text:find("accepted again", 1, true) then recovered = recovered + 1; end
		end
		assert.same({ 1, 1 }, { errors, recovered }, "one line when it fails, one when it recovers");
		-- a stop while it still fails: no retry writes the marker over the saved state afterwards
		stores.fail_writes.auth_hmac_replay = true;
		local third, _, third_seen = load(base_options(), stores);
		stores.fail_writes.auth_hmac_replay = nil;
		third_seen.global_hooks["server-stopping"]();
		assert.is_nil(stores.auth_hmac_replay.state.running, "the clean stop's state is stored");
		assert.is_nil(third_seen.timers[1](), "no marker over a saved state");
		assert.is_nil(stores.auth_hmac_replay.state.running);
		assert.same({ nil, "unclean-restart" }, { third.test_password("xia", third.get_verifier():mint("xia@" .. HOST)) });
	end);

	-- provider.get_verifier() is reachable from any module and the admin shell: looking at the state
	-- must not stop token logins; the stop's own save does
	it("keeps token logins working when another module reads the replay state", function()
		local stores = {};
		local provider, _, seen = load(base_options(), stores);
		local v = provider.get_verifier();
		assert.is_true(provider.test_password("yul", v:mint("yul@" .. HOST)));
		local state = v:replay_state();
		assert.are.equal(1, #state.entries);
		assert.is_true(stores.auth_hmac_replay.state.running, "reading saves nothing");
		assert.is_true(provider.test_password("yul", v:mint("yul@" .. HOST)));
		seen.global_hooks["server-stopping"]();
		assert.are.equal(2, #stores.auth_hmac_replay.state.entries);
		assert.same({ nil, "unclean-restart" }, { provider.test_password("yul", v:mint("yul@" .. HOST)) });
	end);

	it("takes back a sealed state whose numbers a storage back end turned into floats", function()
		local v = load(base_options()).get_verifier();
		assert.is_number((v:verify(v:mint("wes@" .. HOST), "wes@" .. HOST)));
		local state = v:replay_state();
		for _, k in ipairs({ "otp_step", "otp_skew", "high_water", "quarantine", "format" }) do state[k] = state[k] + 0.0; end
		local fresh = load(base_options()).get_verifier();
		local start = fresh:restore_replay_state(state);
		assert.same({ "clean", 1 }, { start.outcome, start.taken });
		state.high_water = state.high_water + 0.5;
		assert.are.equal("unclean", load(base_options()).get_verifier():restore_replay_state(state).outcome);
	end);

	it("reads relative secret files from the config file's directory, not the working directory", function()
		local doc = env.vectors();
		local dir = os.tmpname(); os.remove(dir); assert(require "lfs".mkdir(dir));
		local f = assert(io.open(dir .. "/secret.txt", "wb")); f:write(doc.secrets[1]); f:close();
		os.execute("chmod 600 " .. dir .. "/secret.txt");
		local provider = load(base_options({ token_secret = nil, token_secret_file = "secret.txt", config_dir = dir }));
		local case = doc.cases[1];
		assert.are.equal(case.step, (provider.get_verifier():verify(case.token, case.jid, case.now)));
		local err = load_error(base_options({ token_secret = nil, token_secret_file = "secret.txt" }));
		assert.truthy(err:find("cannot read /nonexistent-config-dir/secret.txt", 1, true), err);
		os.remove(dir .. "/secret.txt"); os.remove(dir);
	end);

	it("never loads the native library from the working directory", function()
		local lfs = require "lfs";
		local dir = os.tmpname(); os.remove(dir); assert(lfs.mkdir(dir));
		-- a working library, planted where "./?.so" on package.cpath would find it
		os.execute(("cp %s %s/prosody_auth_hmac.so"):format(env.library_path, dir));
		local saved_loaded, saved_cpath, cwd = package.loaded.prosody_auth_hmac, package.cpath, lfs.currentdir();
		package.loaded.prosody_auth_hmac = nil;
		package.cpath = "./?.so;" .. package.cpath;
		assert(lfs.chdir(dir));
		local options = base_options();
		options.auth_hmac_library = nil;
		local ok, err = pcall(load, options);
		lfs.chdir(cwd);
		package.loaded.prosody_auth_hmac, package.cpath = saved_loaded, saved_cpath;
		os.remove(dir .. "/prosody_auth_hmac.so"); os.remove(dir);
		assert.is_false(ok, "loaded a library from the working directory");
		assert.truthy(tostring(err):find("cannot load the native library", 1, true), tostring(err));
		assert.falsy(tostring(err):find("./prosody_auth_hmac.so", 1, true), tostring(err));
	end);

	it("names the path it tried when the native library is missing", function()
		local saved = package.loaded.prosody_auth_hmac;
		package.loaded.prosody_auth_hmac = nil;
		local err = load_error(base_options({ auth_hmac_library = "/nowhere/prosody_auth_hmac.so" }));
		package.loaded.prosody_auth_hmac = saved;
		assert.truthy(err:find("cannot load the native library", 1, true));
		assert.truthy(err:find("/nowhere/prosody_auth_hmac.so (not found)", 1, true));
	end);

	it("knows users who have logged in, or everyone when asked to", function()
		local provider = load(base_options());
		assert.is_nil((provider.user_exists("newbie")));
		assert.is_true(provider.test_password("newbie", minter(provider)("newbie")));
		assert.is_true(provider.user_exists("newbie"));
		local everyone = load(base_options({ token_user_exists = "any" }));
		assert.is_true(everyone.user_exists("stranger"));
	end);

	it("refuses account management with a clear message", function()
		local provider = load(base_options());
		local ok, err = provider.set_password("alice", "x");
		assert.is_nil(ok);
		assert.truthy(err:find("not supported", 1, true));
		ok, err = provider.create_user("alice", "x");
		assert.is_nil(ok);
		assert.truthy(err:find("not supported", 1, true));
	end);
end);

describe("mod_sasl_hmac handler #prosody", function()
	local secure = { secure = true, ip = "192.0.2.7" };

	-- SASL-HMAC-PLUS: offered when Prosody handed the handler a channel binding; the proofs cover
	-- the binding data, so the exchange fails on another channel (a relay).
	it("offers SASL-HMAC-PLUS with a channel binding and binds both proofs to it", function()
		local sha256 = require "util.hashes".hmac_sha256;
		local base64 = require "util.encodings".base64;
		local provider = load(base_options());
		assert.is_nil(provider.get_sasl_handler(secure):mechanisms()["SASL-HMAC-PLUS"]);
		local function attempt(server_cb, client_cb, via_clone)
			local h = provider.get_sasl_handler(secure);
			h.userdata = { conn = server_cb };
			h:add_cb_handler("tls-unique", function (self) return self.userdata.conn; end);
			assert.is_true(h:mechanisms()["SASL-HMAC-PLUS"]);
			if via_clone then h = h:clean_clone(); end
			assert.is_true(h:select("SASL-HMAC-PLUS"));
			local public, b64 = provider.get_verifier():mint("ivy@" .. HOST):match("^(%d+) (.+)$");
			local s = base64.decode(b64);
			local cfm = "tls-unique\0\0ivy\0" .. public;
			local status, sn = h:process(cfm);
			assert.are.equal("challenge", status);
			local status2, data = h:process(sha256(s, "SASL-HMAC client\0" .. cfm .. "\0" .. sn .. "\0" .. client_cb));
			return status2, data, sha256(s, "SASL-HMAC server\0" .. cfm .. "\0" .. sn .. "\0" .. client_cb);
		end
		local status, data, expected = attempt("finished-A", "finished-A");
		assert.same({ "success", expected }, { status, data });
		assert.are.equal("success", (attempt("finished-A", "finished-A", true)), "clean_clone keeps the bindings");
		local relayed, condition = attempt("finished-B", "finished-A");
		assert.same({ "failure", "not-authorized" }, { relayed, condition });
	end);

	it("offers token mechanisms only on encrypted sessions, like Prosody's PLAIN", function()
		local provider = load(base_options());
		local all = { PLAIN = true, ["X-TOKEN"] = true, ["SASL-HMAC"] = true };
		assert.same(all, provider.get_sasl_handler(secure):mechanisms());
		local plain_session = { secure = false, ip = "192.0.2.8" };
		local h = provider.get_sasl_handler(plain_session);
		-- the bearer mechanisms follow PLAIN; SASL-HMAC sends no secret and follows its own name
		assert.same({ ["SASL-HMAC"] = true }, h:mechanisms());
		assert.is_nil(h:select("X-TOKEN"));
		local strict = load(base_options({ insecure_sasl_mechanisms = { "PLAIN", "SASL-HMAC" } }));
		assert.same({}, strict.get_sasl_handler(plain_session):mechanisms());
		local lax = load(base_options({ allow_unencrypted_plain_auth = true }));
		assert.same(all, lax.get_sasl_handler(plain_session):mechanisms());
		local only = load(base_options({ token_mechanisms = { "X-TOKEN" } }));
		assert.same({ ["X-TOKEN"] = true }, only.get_sasl_handler(secure):mechanisms());
	end);

	it("logs in through select/process and gives a fresh handler on clean_clone", function()
		local provider = load(base_options());
		local mint = minter(provider);
		local h = provider.get_sasl_handler(secure);
		assert.is_true(h:select("PLAIN"));
		assert.is_nil(h:select("X-TOKEN"), "one mechanism per exchange");
		assert.are.equal("success", (h:process("alice@example.org\0Alice\0" .. mint("alice"))));
		assert.are.equal("alice", h.username);
		assert.is_true(provider.user_exists("alice"));
		local fresh = h:clean_clone();
		assert.is_nil(fresh.selected);
		assert.is_true(fresh:select("X-TOKEN"));
	end);

	-- one account looping on its credentials_url must not refuse everyone else's logins
	it("refuses an account at its replay quota alone, with temporary-auth-failure", function()
		local provider, seen = load(base_options({ token_replay_user_quota = 2, token_replay_cache_size = 100 }));
		local mint = minter(provider);
		assert.are.equal(2, provider.get_verifier():stats().token_replay_user_quota);
		local function attempt(user)
			local h = provider.get_sasl_handler(secure);
			assert.is_true(h:select("PLAIN"));
			return h:process("\0" .. user .. "\0" .. mint(user:lower()));
		end
		assert.are.equal("success", (attempt("loop")));
		assert.are.equal("success", (attempt("Loop")));
		local status, condition = attempt("loop");
		assert.same({ "failure", "temporary-auth-failure" }, { status, condition });
		assert.truthy(seen.logs[#seen.logs].text:find("loop@example.org from 192.0.2.7: quota-exceeded", 1, true),
			seen.logs[#seen.logs].text);
		for i = 1, 5 do assert.are.equal("success", (attempt("other" .. i))); end
		assert.are.equal("failure", (attempt("loop")));
		local err = load_error(base_options({ token_replay_user_quota = 0 }));
		assert.truthy(err:find("token_replay_user_quota must be at least 1", 1, true), err);
	end);

	-- An authentic token outside the window: the log line says how far off the web app's clock was;
	-- the client gets credentials-expired and nothing more.
	it("logs how far off the minting clock was for an expired token, by every mechanism", function()
		local provider, seen, auth_seen = load(base_options());
		local v = provider.get_verifier();
		-- the mechanisms verify at this clock: the offset is measured in whole steps, so a system clock
		-- crossing a step boundary between minting and verifying would make it 3630 s
		local now = os.time();
		auth_seen.sasl_env.token_clock = function() return now; end
		for _, mech in ipairs({ "PLAIN", "X-TOKEN", "SASL-HMAC" }) do
			local token = v:mint("vera@" .. HOST, now - 3600);
			local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.11" });
			local status, condition, text = exchange(h, mech, "vera", token);
			assert.same({ "failure", "credentials-expired" }, { status, condition });
			assert.falsy((text or ""):find("3600", 1, true), "the client is not told");
			local line = seen.logs[#seen.logs].text;
			assert.truthy(line:find(": expired (minted about 3600 s in the past: check the web app's clock and timezone)", 1, true), line);
		end
		local step, reason, detail = v:verify(v:mint("vera@" .. HOST, now + 7200), "vera@" .. HOST);
		assert.same({ nil, "expired" }, { step, reason });
		assert.truthy(detail:find("in the future", 1, true), detail);
		-- a few steps in the past: used late, not a wrong clock
		local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.11" });
		assert.is_true(h:select("PLAIN"));
		local late_status, late_condition = h:process("\0vera\0" .. v:mint("vera@" .. HOST, now - 90));
		assert.same({ "failure", "credentials-expired" }, { late_status, late_condition });
		local line = seen.logs[#seen.logs].text;
		assert.truthy(line:find(": expired %(minted about %d+ s ago, and a token is accepted for at most 60 s after minting: "
			.. "most likely used late"), line);
		assert.falsy(line:find("timezone", 1, true), line);
	end);

	-- A genuine token whose OTP matches no step within a day (the web app has another otp_seed): the
	-- client is told so (not-authorized, a text naming otp_seed), not that the clocks disagree.
	it("tells a token minted with another otp_seed from an expired one, by every mechanism", function()
		local provider, seen = load(base_options());
		local other = load(base_options({ otp_seed = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U" })).get_verifier();
		for _, mech in ipairs({ "PLAIN", "X-TOKEN", "SASL-HMAC" }) do
			local token = other:mint("walt@" .. HOST);
			local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.12" });
			local status, condition, text = exchange(h, mech, "walt", token);
			assert.same({ "failure", "not-authorized" }, { status, condition });
			assert.are.equal(env.native().reason_texts["otp-mismatch"], text);
			assert.truthy(text:find("otp_seed", 1, true), text);
			local line = seen.logs[#seen.logs].text;
			assert.truthy(line:find("Failed " .. mech .. " token login for walt@example.org from 192.0.2.12: otp-mismatch "
				.. "(no OTP step within 24 h matches: the web app's otp_seed", 1, true), line);
		end
		assert.same({ nil, "otp-mismatch" }, { provider.test_password("walt", other:mint("walt@" .. HOST)) });
		assert.truthy(seen.logs[#seen.logs].text:find(": otp-mismatch (no OTP step within 24 h matches", 1, true));
	end);

	-- One stream may fail token_max_failures times: the last failure closes it (policy-violation) once
	-- the reply is out, and what it still sends is refused without a log line each.
	it("closes a stream after token_max_failures failed logins, with one log line each until then", function()
		local provider, seen = load(base_options({ token_max_failures = 3 }));
		local mint = minter(provider);
		local closed = {};
		local session = { secure = true, ip = "192.0.2.9", close = function(_, reason) closed[#closed+1] = reason; end };
		local function attempt(token)
			local h = provider.get_sasl_handler(session);
			assert.is_true(h:select("PLAIN"));
			return h:process("\0gus\0" .. token);
		end
		local before = #seen.logs;
		for _ = 1, 50 do assert.are.equal("failure", (attempt("1 x"))); end
		local lines = {};
		for i = before + 1, #seen.logs do lines[#lines+1] = seen.logs[i].text; end
		assert.are.equal(4, #lines, table.concat(lines, "\n")); -- three failures and the closing line
		assert.truthy(lines[4]:find("Closing the stream from 192.0.2.9 after 3 failed token logins", 1, true), lines[4]);
		assert.are.equal(0, #closed, "not before the failure reply");
		for _, timer in ipairs(seen.timers) do timer(); end
		assert.same({ { condition = "policy-violation", text = "Too many failed logins" } }, closed);
		-- even a valid token is refused on that stream now; a new stream is fine
		assert.are.equal("failure", (attempt(mint("gus"))));
		local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.9" });
		assert.is_true(h:select("PLAIN"));
		assert.are.equal("success", (h:process("\0gus\0" .. mint("gus"))));
	end);

	-- process() before a successful select() (no exchange): refused through the one failure path,
	-- so it is counted against the stream, logged and its event fired like any other failure
	it("refuses process() without an exchange as a counted, logged failure", function()
		local provider, seen = load(base_options({ token_max_failures = 2 }));
		local closed = 0;
		local session = { secure = true, ip = "192.0.2.11", close = function() closed = closed + 1; end };
		local h = provider.get_sasl_handler(session);
		local before_logs, before_events = #seen.logs, #seen.events;
		local status, condition = h:process("\0gus\0" .. "1 x");
		assert.same({ "failure", "malformed-request" }, { status, condition });
		assert.are.equal(1, session.token_failures);
		assert.are.equal(before_logs + 1, #seen.logs);
		assert.truthy(seen.logs[#seen.logs].text:find("token login for (unknown) from 192.0.2.11: malformed", 1, true),
			seen.logs[#seen.logs].text);
		assert.are.equal(before_events + 1, #seen.events);
		assert.are.equal("token-authentication-failure", seen.events[#seen.events].name);
		-- the second one is the stream's last
		assert.are.equal("failure", (h:process("\0gus\0" .. "1 x")));
		for _, timer in ipairs(seen.timers) do timer(); end
		assert.are.equal(1, closed);
	end);

	-- One client opening stream after stream (a new BOSH session every token_max_failures failures):
	-- its address gets a budget of lines a minute across streams; beyond it its failures are counted,
	-- not logged, its streams are closed at their first failure, and one line a minute says how many
	-- were not logged. Another address is not affected.
	it("bounds one address's failed logins across streams, and nobody else's", function()
		local provider, seen, auth_seen = load(base_options());
		local clock = 1700000040;
		auth_seen.sasl_env.failure_clock = function() return clock; end
		local per_minute = env.native().defaults.token_max_failures_per_address;
		local ran = 0;
		local function stream(ip)
			local closed = false;
			local session = { secure = true, ip = ip, close = function() closed = true; end };
			local failures = 0;
			while not closed and failures < 50 do
				local h = provider.get_sasl_handler(session);
				assert.is_true(h:select("PLAIN"));
				assert.are.equal("failure", (h:process("\0gus\0" .. "1 x")));
				failures = failures + 1;
				for i = ran + 1, #seen.timers do seen.timers[i](); end -- the stream closes after the reply
				ran = #seen.timers;
			end
			assert.is_true(closed);
			return failures;
		end
		local function lines(from, needle)
			local n = 0;
			for i = from + 1, #seen.logs do
				if seen.logs[i].text:find(needle, 1, true) then n = n + 1; end
			end
			return n;
		end
		local before, total = #seen.logs, 0;
		for _ = 1, 100 do total = total + stream("192.0.2.50"); end
		assert.are.equal(per_minute, lines(before, "Failed PLAIN token login for gus@example.org from 192.0.2.50: malformed"));
		-- the first streams use the budget (token_max_failures each), every later one closes at its first failure
		assert.are.equal(per_minute + 100 - math.floor(per_minute / defaults_max_failures()), total);
		assert.is_true(#seen.logs - before <= per_minute + per_minute / 5 + 1, tostring(#seen.logs - before));
		-- another address has its own budget and its own streams' token_max_failures
		local mark = #seen.logs;
		assert.are.equal(defaults_max_failures(), stream("198.51.100.7"));
		assert.are.equal(defaults_max_failures(), lines(mark, "from 198.51.100.7: malformed"));
		-- the minute over: one summary for the flooding address, and a fresh budget
		clock = clock + 60;
		mark = #seen.logs;
		stream("192.0.2.50");
		assert.are.equal(1, lines(mark, ("%d more failed token logins from 192.0.2.50 in the minute before were not logged")
			:format(total - per_minute)));
		assert.are.equal(defaults_max_failures(), lines(mark, "from 192.0.2.50: malformed"));
	end);

	-- test_password has no session; for mod_legacyauth it is the origin of the jabber:iq:auth set
	-- handled in the same call: its failures carry the client's address, count per stream (the
	-- stream closes at token_max_failures) and per address.
	it("gives mod_legacyauth's test_password failures the client's address and a per-stream limit", function()
		local st = require "util.stanza";
		local provider, seen, auth_seen = load(base_options({ token_max_failures = 3 }));
		local closed = 0;
		local session = { type = "c2s_unauthed", ip = "192.0.2.77", close = function() closed = closed + 1; end };
		local function legacy(user, password)
			local iq = st.iq({ type = "set", id = "a" }):tag("query", { xmlns = "jabber:iq:auth" })
				:text_tag("username", user):text_tag("password", password):text_tag("resource", "r"):up();
			local result;
			env.fire(auth_seen, "stanza/iq/jabber:iq:auth:query", { origin = session, stanza = iq }, function()
				result = { provider.test_password(user, password) }; -- what mod_legacyauth calls
				return true;
			end);
			return table.unpack(result);
		end
		local before = #seen.logs;
		local results = {};
		for i = 1, 10 do results[i] = select(2, legacy("tom", "12345678 x" .. i)); end
		assert.same({ "malformed", "malformed", "malformed", "too-many-failures" }, { results[1], results[2], results[3], results[4] });
		local lines = {};
		for i = before + 1, #seen.logs do lines[#lines+1] = seen.logs[i].text; end
		assert.are.equal(4, #lines, table.concat(lines, "\n"));
		assert.truthy(lines[1]:find("Failed test_password token login for tom@example.org from 192.0.2.77: malformed", 1, true), lines[1]);
		assert.truthy(lines[4]:find("Closing the stream from 192.0.2.77 after 3 failed token logins", 1, true), lines[4]);
		for _, timer in ipairs(seen.timers) do timer(); end
		assert.are.equal(1, closed);
		-- another caller without a session (mod_rest, ...) is not taken for that stream
		assert.same({ nil, "malformed" }, { provider.test_password("tom", "12345678 y") });
		assert.truthy(seen.logs[#seen.logs].text:find("from (unknown address): malformed", 1, true), seen.logs[#seen.logs].text);
	end);

	-- mod_legacyauth may refuse a request without calling test_password (no resource, encryption
	-- required, already logged in): the stream and the password must not stay behind, to be
	-- matched by a later sessionless test_password (mod_rest, ...) with the same values.
	it("keeps a legacy login's stream and password for that event only", function()
		local st = require "util.stanza";
		local provider, seen, auth_seen = load(base_options());
		local session = { type = "c2s_unauthed", ip = "192.0.2.78", close = function() end };
		local function iq(user, password)
			return st.iq({ type = "set", id = "a" }):tag("query", { xmlns = "jabber:iq:auth" })
				:text_tag("username", user):text_tag("password", password):up();
		end
		local function last() return seen.logs[#seen.logs].text; end
		-- refused by mod_legacyauth itself (no resource): test_password is never called
		assert.is_true(env.fire(auth_seen, "stanza/iq/jabber:iq:auth:query",
			{ origin = session, stanza = iq("tom", "12345678 z") }, function() return true; end));
		assert.same({ nil, "malformed" }, { provider.test_password("tom", "12345678 z") });
		assert.truthy(last():find("from (unknown address): malformed", 1, true), last());
		-- nor when a handler raises: the error goes on, the slot is emptied
		local ok, err = pcall(env.fire, auth_seen, "stanza/iq/jabber:iq:auth:query",
			{ origin = session, stanza = iq("tom", "12345678 w") }, function() error("boom", 0); end);
		assert.same({ false, "boom" }, { ok, err });
		assert.same({ nil, "malformed" }, { provider.test_password("tom", "12345678 w") });
		assert.truthy(last():find("from (unknown address): malformed", 1, true), last());
		-- inside the event it is still the stream's
		env.fire(auth_seen, "stanza/iq/jabber:iq:auth:query", { origin = session, stanza = iq("Tom", "12345678 v") },
			function() provider.test_password("tom", "12345678 v"); return true; end);
		assert.truthy(last():find("from 192.0.2.78: malformed", 1, true), last());
	end);

	-- Prosody 13's account controls: a disabled account's good tokens are refused (after
	-- verification, so a forger learns nothing), by SASL and by test_password; nobody else's are.
	it("refuses a disabled account's tokens until it is enabled again, and only that account's", function()
		local provider, seen, auth_seen = load(base_options());
		local mint = minter(provider);
		local session = { secure = true, ip = "192.0.2.30" };
		local function login(user, mech, token)
			local h = provider.get_sasl_handler(session);
			assert.is_true(h:select(mech));
			return h:process("\0" .. user .. "\0" .. (token or mint(user)));
		end
		assert.is_true(provider.is_enabled("olga"));
		assert.truthy(provider.disable("olga"));
		assert.is_false(provider.is_enabled("olga"));
		for _, mech in ipairs({ "PLAIN", "X-TOKEN" }) do
			assert.same({ "failure", "account-disabled", "This account is disabled." }, { login("olga", mech) });
			assert.truthy(seen.logs[#seen.logs].text:find("Failed " .. mech .. " token login for olga@example.org from 192.0.2.30: account-disabled", 1, true),
				seen.logs[#seen.logs].text);
		end
		-- a forged token for her is refused for the forgery, not for the account
		local public, mac = mint("olga"):match("^(%d+) (.+)$");
		local forged = public .. " " .. (mac:sub(1, 1) == "A" and "B" or "A") .. mac:sub(2);
		local status, condition = login("olga", "PLAIN", forged);
		assert.same({ "failure", "not-authorized" }, { status, condition });
		assert.same({ nil, "account-disabled" }, { provider.test_password("olga", mint("olga")) });
		assert.are.equal("success", (login("pia", "PLAIN")));
		-- deleting would purge the disabled mark with the user's stores: refused until enabled
		local deleted, why = provider.delete_user("olga");
		assert.is_nil(deleted);
		assert.truthy(why:find("enable it first", 1, true), why);
		assert.is_false(provider.is_enabled("olga"));
		assert.truthy(provider.enable("olga"));
		assert.are.equal("success", (login("olga", "PLAIN")));
		assert.is_true(provider.test_password("olga", mint("olga")));
		assert.truthy(provider.delete_user("olga"));
		-- a handler without the account check is never made
		local ok, err = pcall(auth_seen.sasl_env.new_handler, provider.get_verifier(), session, function() end);
		assert.is_false(ok);
		assert.truthy(tostring(err):find("new_handler needs the provider's is_enabled", 1, true), tostring(err));
		-- nor one without the sign-out check
		ok, err = pcall(auth_seen.sasl_env.new_handler, provider.get_verifier(), session, function() end,
			provider.is_enabled);
		assert.is_false(ok);
		assert.truthy(tostring(err):find("new_handler needs the provider's signouts", 1, true), tostring(err));
	end);

	-- Prosody's usermanager passes names as its caller typed them ("Olga"); the login's check uses
	-- the nodeprep'd name. Both must mean the one account, and the sessions of a re-cased disable
	-- must end although mod_c2s, looking them up by the name as given, finds none.
	it("disables, enables and finds an account under any case of its name, and ends its sessions", function()
		local provider, _, auth_seen = load(base_options({ token_user_exists = "any" }));
		local mint = minter(provider);
		local function login(user)
			local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.31" });
			assert.is_true(h:select("PLAIN"));
			return (h:process("\0" .. user .. "\0" .. mint(user)));
		end
		assert.truthy(provider.disable("Olga"));
		assert.is_false(provider.is_enabled("olga"));
		assert.is_false(provider.is_enabled("OLGA"));
		assert.are.equal("failure", login("olga"));
		assert.same({ nil, "account-disabled" }, { provider.test_password("olga", mint("olga")) });
		assert.truthy(provider.enable("OLGA"));
		assert.are.equal("success", login("olga"));
		-- a name nodeprep refuses is no account: refused, never stored under some other spelling
		for _, bad in ipairs({ "a b", "x\0y", "", 42 }) do
			assert.is_nil((provider.disable(bad)), tostring(bad));
			assert.is_nil((provider.enable(bad)), tostring(bad));
			assert.is_falsy(provider.is_enabled(bad), tostring(bad));
			assert.is_falsy(provider.user_exists(bad), tostring(bad));
		end
		assert.is_nil(next(auth_seen.stores.auth_hmac_disabled));
		-- user-disabled with the name as typed: her unbound and bound streams close, nobody else's
		local closed = {};
		local function stream(user, kind)
			local session = { username = user, type = kind, ip = "192.0.2.32" };
			function session.close(self, reason) closed[#closed+1] = { self.username, self.type, reason.condition }; end
			return session;
		end
		local unbound, bound, other = stream("olga", "c2s_unbound"), stream("olga", "c2s"), stream("pia", "c2s");
		auth_seen.hooks["authentication-success"].handler({ session = unbound });
		auth_seen.env.prosody.hosts = { [HOST] = { sessions = {
			olga = { sessions = { r1 = bound } }, pia = { sessions = { r1 = other } } } } };
		assert.truthy(provider.disable("Olga"));
		auth_seen.global_hooks["user-disabled"]({ username = "Olga", host = HOST });
		table.sort(closed, function(a, b) return a[2] < b[2]; end);
		assert.same({ { "olga", "c2s", "policy-violation" }, { "olga", "c2s_unbound", "policy-violation" } }, closed);
	end);

	it("refuses a token_max_failures that is not a number of at least 1 (NaN included)", function()
		for _, bad in ipairs({ 0, -1, 0 / 0 }) do
			local ok, err = pcall(load, base_options({ token_max_failures = bad }));
			assert.is_false(ok, tostring(bad));
			assert.truthy(tostring(err):find("token_max_failures", 1, true), tostring(err)); -- the option at fault, by name
		end
	end);

	-- mod_sasl2 runs a second <authenticate/> on a session that is already logged in: refused.
	it("refuses any exchange on a session that is already authenticated", function()
		local provider, seen = load(base_options());
		local mint = minter(provider);
		local session = { secure = true, ip = "192.0.2.10", username = "mallory" };
		for _, mech in ipairs({ "PLAIN", "X-TOKEN", "SASL-HMAC" }) do
			local h = provider.get_sasl_handler(session);
			assert.is_true(h:select(mech));
			local status, condition = h:process("\0mallory2\0" .. mint("mallory2"));
			assert.same({ "failure", "not-authorized" }, { status, condition });
			assert.truthy(seen.logs[#seen.logs].text:find("Failed " .. mech .. " token login for mallory@example.org from 192.0.2.10: already-authenticated", 1, true),
				seen.logs[#seen.logs].text);
		end
		-- the token was never looked at, so it still works for its owner elsewhere
	end);

	it("counts logins by mechanism and outcome", function()
		local provider, seen = load(base_options());
		local mint = minter(provider);
		local h = provider.get_sasl_handler(secure); h:select("PLAIN");
		assert.are.equal("success", (h:process("\0ivy\0" .. mint("ivy"))));
		h = provider.get_sasl_handler(secure); h:select("X-TOKEN");
		assert.are.equal("failure", (h:process("\0ivy\0" .. mint("jon"))));
		assert.is_nil((provider.test_password("ivy", "garbage")));
		local values = seen.metrics.logins.values;
		assert.are.equal(1, values["PLAIN/success"]);
		assert.are.equal(1, values["X-TOKEN/bad-signature"]);
		assert.are.equal(1, values["test_password/malformed"]);
	end);

	it("runs a SASL-HMAC exchange: challenge, proof, server proof as success data", function()
		local sha256 = require "util.hashes".hmac_sha256;
		local base64 = require "util.encodings".base64;
		local provider = load(base_options());
		local token = provider.get_verifier():mint("hana@" .. HOST);
		local public, b64 = token:match("^(%d+) (.+)$");
		local s = base64.decode(b64);
		local h = provider.get_sasl_handler(secure);
		assert.is_true(h:select("SASL-HMAC"));
		local cfm = "\0hana\0" .. public;
		local status, sn = h:process(cfm);
		assert.are.equal("challenge", status);
		assert.are.equal(24, #sn);
		local proof = sha256(s, "SASL-HMAC client\0" .. cfm .. "\0" .. sn);
		local status2, server_proof = h:process(proof);
		assert.are.equal("success", status2);
		assert.are.equal(sha256(s, "SASL-HMAC server\0" .. cfm .. "\0" .. sn), server_proof);
		assert.are.equal("hana", h.username);
	end);

	it("maps each refusal to its SASL condition and logs one line without the token", function()
		local provider, seen, auth_seen = load(base_options({ token_replay_cache_size = 3 }));
		local mint = minter(provider);
		local function attempt(mech, message)
			local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.7" });
			assert.is_true(h:select(mech));
			return h:process(message);
		end
		local replayed = mint("carol");
		assert.are.equal("success", (attempt("PLAIN", "\0carol\0" .. replayed)));
		local cases = {
			{ "\0carol\0" .. replayed, "replayed", "not-authorized" },
			{ "\0carol\0" .. mint("dave"), "bad-signature", "not-authorized" },
			{ "\0carol\0" .. mint("carol", os.time() - 90), "expired", "credentials-expired" },
			{ "\0carol@other.org\0" .. mint("carol"), "wrong-host", "not-authorized" },
			{ "dave@example.org\0carol\0" .. mint("carol"), "invalid-authzid", "invalid-authzid" },
			{ "\0carol\0", "malformed", "malformed-request" },
			{ "\0carol\0123 not-base64", "malformed", "malformed-request" },
		};
		for _, c in ipairs(cases) do
			local before = #seen.logs;
			local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.7" });
			assert.is_true(h:select("X-TOKEN"));
			local status, condition = h:process(c[1]);
			assert.are.equal("failure", status);
			assert.are.equal(c[3], condition, c[2]);
			local infos = {};
			for i = before + 1, #seen.logs do
				if seen.logs[i].level == "info" then infos[#infos+1] = seen.logs[i].text; end
			end
			assert.are.equal(1, #infos, c[2]);
			assert.truthy(infos[1]:find("192.0.2.7", 1, true));
			assert.truthy(infos[1]:find(": " .. c[2], 1, true), infos[1]);
			local token = c[1]:match("%z([^%z]*)$");
			if #token > 0 then assert.falsy(infos[1]:find(token, 1, true)); end
			local ev = seen.events[#seen.events];
			assert.are.equal("token-authentication-failure", ev.name);
			assert.are.equal(c[2], ev.data.reason);
		end
		-- fill the cache (cap 3: carol's first token + two more), then fail closed
		assert.are.equal("success", (attempt("PLAIN", "\0e1\0" .. mint("e1"))));
		assert.are.equal("success", (attempt("PLAIN", "\0e2\0" .. mint("e2"))));
		local function warnings()
			local w = {};
			for _, l in ipairs(seen.logs) do if l.level == "warn" then w[#w+1] = l.text; end end
			return w;
		end
		local function refused_full()
			local status, condition = attempt("PLAIN", "\0e3\0" .. mint("e3"));
			assert.are.equal("failure", status);
			assert.are.equal("temporary-auth-failure", condition);
		end
		-- the warning's minute runs on the injected clock, not the wall clock
		local clock = 1700000000;
		auth_seen.sasl_env.failure_clock = function() return clock; end
		local warnings_before = #warnings();
		for _ = 1, 3 do refused_full(); end
		assert.are.equal(warnings_before + 1, #warnings(), "one warning, not one per refusal");
		assert.truthy(warnings()[#warnings()]:find("Replay cache full", 1, true));
		clock = clock + 59;
		refused_full();
		assert.are.equal(warnings_before + 1, #warnings(), "none again within the minute");
		clock = clock + 1;
		refused_full();
		assert.are.equal(warnings_before + 2, #warnings(), "again once the minute is over");
	end);
end);

-- The native module is the one home of the facts the shims use: the mechanisms and which are
-- bearer, each refusal reason's SASL condition and text, the option defaults and limits. These
-- specs change those facts in a copy of the module and see the shims follow.
describe("the shims' facts come from the native module #prosody", function()
	local RFC6120 = { ["aborted"] = true, ["account-disabled"] = true, ["credentials-expired"] = true,
		["encryption-required"] = true, ["incorrect-encoding"] = true, ["invalid-authzid"] = true,
		["invalid-mechanism"] = true, ["malformed-request"] = true, ["mechanism-too-weak"] = true,
		["not-authorized"] = true, ["temporary-auth-failure"] = true };

	it("gives every refusal reason an RFC 6120 condition, and texts only for conditions it uses", function()
		local native = env.native();
		local used = {};
		for _, reason in ipairs(native.reasons) do
			local condition = native.conditions[reason];
			assert.truthy(RFC6120[condition], ("reason %s: condition %s"):format(reason, tostring(condition)));
			used[condition] = true;
		end
		local n = 0;
		for _ in pairs(native.conditions) do n = n + 1; end
		assert.are.equal(#native.reasons, n, "a condition for a reason the module does not list");
		for condition, text in pairs(native.condition_texts) do
			assert.truthy(used[condition], condition);
			assert.is_string(text);
		end
		-- a reason sends its condition's text; only otp-mismatch (reached with a genuine token) says more
		for _, reason in ipairs(native.reasons) do
			local generic = native.condition_texts[native.conditions[reason]];
			if reason == "otp-mismatch" then
				assert.truthy(native.reason_texts[reason]:find("otp_seed", 1, true));
			else
				assert.are.equal(generic, native.reason_texts[reason], reason);
			end
		end
	end);

	-- a copy of the real module with some facts changed
	local function altered(change)
		local real = env.native();
		local copy = {};
		for k, v in pairs(real) do copy[k] = v; end
		for _, key in ipairs({ "conditions", "condition_texts", "reason_texts", "defaults", "limits", "bearer" }) do
			local t = {};
			for k, v in pairs(real[key]) do t[k] = v; end
			copy[key] = t;
		end
		change(copy);
		return copy;
	end

	local function with_native(native, f)
		local saved = package.loaded.prosody_auth_hmac;
		package.loaded.prosody_auth_hmac = native;
		local ok, err = pcall(f);
		package.loaded.prosody_auth_hmac = saved;
		assert(ok, err);
	end

	it("maps reasons to the module's conditions and texts", function()
		with_native(altered(function(n)
			n.conditions.replayed = "account-disabled";
			n.reason_texts.replayed = "altered text";
		end), function()
			local provider = load(base_options());
			local t = minter(provider)("ivy");
			local secure = { secure = true, ip = "192.0.2.20" };
			local h = provider.get_sasl_handler(secure); h:select("PLAIN");
			assert.are.equal("success", (h:process("\0ivy\0" .. t)));
			h = provider.get_sasl_handler(secure); h:select("PLAIN");
			assert.same({ "failure", "account-disabled", "altered text" }, { h:process("\0ivy\0" .. t) });
		end);
	end);

	it("takes the mechanisms, the bearer set and the defaults from the module", function()
		with_native(altered(function(n)
			n.defaults.token_mechanisms = { "X-TOKEN", "SASL-HMAC" };
			n.defaults.token_max_failures = 2;
			n.bearer = { ["PLAIN"] = true };
		end), function()
			local provider, seen = load(base_options());
			local session = { secure = true, ip = "192.0.2.21", close = function() end };
			assert.same({ ["X-TOKEN"] = true, ["SASL-HMAC"] = true }, provider.get_sasl_handler(session):mechanisms());
			-- X-TOKEN is no longer bearer: offered without encryption, like SASL-HMAC; test_password
			-- follows the bearer set
			assert.same({ ["X-TOKEN"] = true, ["SASL-HMAC"] = true }, provider.get_sasl_handler({ secure = false }):mechanisms());
			assert.same({ nil, "bearer-disabled" }, { provider.test_password("ivy", minter(provider)("ivy")) });
			for _ = 1, 2 do
				local h = provider.get_sasl_handler(session); h:select("X-TOKEN");
				h:process("\0ivy\0" .. "1 x");
			end
			assert.truthy(seen.logs[#seen.logs].text:find("after 2 failed token logins", 1, true), seen.logs[#seen.logs].text);
		end);
		with_native(altered(function(n) n.defaults.token_user_exists = "any"; end), function()
			assert.is_true(load(base_options()).user_exists("never-seen"));
		end);
		with_native(altered(function(n) n.limits.secret_advised_bytes = 64; end), function()
			local _, _, auth_seen = load(base_options({ token_secret = string.rep("k", 40) }));
			assert.truthy(auth_seen.logs[1].text:find("use at least 64 random bytes", 1, true), auth_seen.logs[1].text);
		end);
	end);

	it("leaves the server's own trouble out of the fail2ban filter, as out of the address budget", function()
		local filter = env.read(env.repo .. "/examples/fail2ban/prosody-auth-hmac.conf"):match("\nfailregex = ([^\n]+)");
		assert.truthy(filter and filter:find("bad-signature", 1, true));
		local n = 0;
		for reason in pairs(env.native().servers_trouble) do
			assert.falsy(filter:find(reason, 1, true), reason);
			n = n + 1;
		end
		assert.is_true(n > 0);
	end);

	it("keeps no copies of them in the Lua files", function()
		for _, file in ipairs({ "mod_auth_hmac.lua", "mod_sasl_hmac.lua" }) do
			local text = env.read(env.repo .. "/lua/" .. file);
			local reasons = {};
			for _, r in ipairs(env.native().reasons) do reasons[r] = true; end
			for condition in pairs(RFC6120) do
				-- a reason of the same name (invalid-authzid, account-disabled) may be named: the shim decides it
				if not reasons[condition] then
					assert.falsy(text:find('"' .. condition .. '"', 1, true), file .. " names " .. condition);
				end
			end
			for _, mech in ipairs(env.native().mechanisms) do
				-- "PLAIN" is also Prosody's own name, whose rules the bearer mechanisms follow
				if mech ~= "PLAIN" then
					assert.falsy(text:find('"' .. mech .. '"', 1, true), file .. " names " .. mech);
				end
			end
			assert.falsy(text:find(tostring(env.native().defaults.token_replay_cache_size), 1, true), file);
			-- every reason a shim decides itself is one the module knows (and so has a condition)
			local known = {};
			for _, r in ipairs(env.native().reasons) do known[r] = true; end
			local n = 0;
			for args in text:gmatch("failed(%b())") do
				local last;
				for literal in args:gmatch('"([^"]+)"') do last = literal; end
				if last and last ~= "test_password" then
					assert.truthy(known[last], file .. ": reason " .. last .. " is not one of the module's");
					n = n + 1;
				end
			end
			assert.are.equal(({ ["mod_auth_hmac.lua"] = 4, ["mod_sasl_hmac.lua"] = 4 })[file], n, file);
		end
	end);
end);

-- tls_server_end_point_hash = "auto": Prosody 13.0.1's mod_saslauth hands tls-server-end-point to the
-- first stream after it loads only (it sets its copy of the option to nil); the handler adds the
-- binding where mod_saslauth's channel-binding step ran without it, and advertises it (XEP-0440).
describe("mod_sasl_hmac tls-server-end-point with \"auto\" #prosody", function()
	local st = require "util.stanza";
	local dir = os.tmpname(); os.remove(dir); assert(require "lfs".mkdir(dir));
	-- a certificate signed with `digest`, and its binding computed by openssl (RFC 5929 §4.1)
	local function certificate(name, newkey, digest)
		local crt = dir .. "/" .. name .. ".crt";
		assert(os.execute(("openssl req -x509 %s -%s -nodes -days 1 -subj /CN=example.org -keyout %s/%s.key -out %s 2>/dev/null")
			:format(newkey, digest, dir, name, crt)));
		local p = assert(io.popen(("openssl x509 -in %s -outform der | openssl dgst -%s -binary"):format(crt, digest)));
		local binding = p:read("*a");
		p:close();
		return crt, binding;
	end
	local rsa_crt, rsa_binding = certificate("rsa", "-newkey rsa:2048", "sha256");
	local ec_crt, ec_binding = certificate("p384", "-newkey ec -pkeyopt ec_paramgen_curve:P-384", "sha384");
	teardown(function() os.execute("rm -rf " .. dir); end);

	local conn = {}; -- the connection mod_saslauth names in the handler's userdata
	local function handler(options, crt, prosodys_own, no_exporter)
		local provider, seen = load(base_options(options));
		local h = provider.get_sasl_handler({ secure = true, encrypted = true, ip = "192.0.2.20", ssl_cfg = { certificate = crt } });
		-- what mod_saslauth 13 does: add_cb_handler for what it offers, then the userdata, then mechanisms()
		if not no_exporter then h:add_cb_handler("tls-exporter", function () return "exporter"; end); end
		if prosodys_own then h:add_cb_handler("tls-server-end-point", prosodys_own); end
		h.userdata = { ["tls-exporter"] = conn, ["tls-server-end-point-conn"] = conn };
		return h, h:mechanisms(), seen;
	end

	it("adds the binding mod_saslauth left out, from the stream's certificate, with its signature's hash", function()
		local h, offered, seen = handler({ tls_server_end_point_hash = "auto" }, rsa_crt, nil, true);
		assert.is_true(offered["SASL-HMAC-PLUS"], "the only binding of the stream");
		assert.are.equal(rsa_binding, h:channel_binding("tls-server-end-point"));
		assert.are.equal(rsa_binding, h:clean_clone():channel_binding("tls-server-end-point"));
		assert.are.equal(32, #rsa_binding);
		local p384 = handler({ tls_server_end_point_hash = "auto" }, ec_crt);
		assert.are.equal(ec_binding, p384:channel_binding("tls-server-end-point"));
		assert.are.equal(48, #ec_binding);
		local infos = 0;
		for _, l in ipairs(seen.logs) do
			if l.level == "info" and l.text:find("on its first stream only", 1, true) then infos = infos + 1; end
		end
		assert.are.equal(1, infos);
	end);

	it("keeps Prosody's own binding, and adds none without \"auto\" or outside mod_saslauth's step", function()
		local own = function () return "prosody's"; end;
		local h = handler({ tls_server_end_point_hash = "auto" }, rsa_crt, own);
		assert.are.equal("prosody's", h:channel_binding("tls-server-end-point"));
		assert.is_nil(rawget(h, "end_point_added"));
		for _, value in ipairs({ false, "0123abcd" }) do
			local other = handler({ tls_server_end_point_hash = value or nil }, rsa_crt);
			assert.is_nil(other:channel_binding("tls-server-end-point"));
		end
		-- Prosody 0.12's and mod_sasl2's userdata name no connection for tls-server-end-point
		local provider = load(base_options({ tls_server_end_point_hash = "auto" }));
		local h012 = provider.get_sasl_handler({ secure = true, ssl_cfg = { certificate = rsa_crt } });
		h012:add_cb_handler("tls-unique", function () return "finished"; end);
		h012.userdata = { ["tls-unique"] = conn };
		h012:mechanisms();
		assert.is_nil(h012:channel_binding("tls-server-end-point"));
		-- no certificate to be found: not offered (-PLUS still is, for the other binding)
		local nocert = handler({ tls_server_end_point_hash = "auto" }, nil);
		assert.is_nil(nocert.cb_handlers["tls-server-end-point"]);
	end);

	it("computes the binding once per stream, and neither adds nor advertises one it cannot compute", function()
		local function read(path) local f = assert(io.open(path)); local d = f:read("*a"); f:close(); return d; end
		local function copy(from, to) local f = assert(io.open(to, "w")); f:write(read(from)); f:close(); end
		-- the certificate file replaced after the handshake (renewed, Prosody not yet reloaded): the
		-- stream keeps the binding of the certificate it was set up with
		local rotating = dir .. "/rotating.crt";
		copy(rsa_crt, rotating);
		local h = handler({ tls_server_end_point_hash = "auto" }, rotating);
		copy(ec_crt, rotating);
		assert.are.equal(rsa_binding, h:channel_binding("tls-server-end-point"));
		-- never LuaSec 1.3's socket:getlocalcertificate(), which frees the TLS context's certificate
		-- when its object is collected
		local asked = 0;
		local sock = { getlocalcertificate = function () asked = asked + 1; error("use after free"); end };
		local luasec13 = { socket = function () return sock; end };
		local provider = load(base_options({ tls_server_end_point_hash = "auto" }));
		local p = provider.get_sasl_handler({ secure = true, encrypted = true, ssl_cfg = { certificate = rsa_crt } });
		p.userdata = { ["tls-server-end-point-conn"] = luasec13 };
		assert.is_true(p:mechanisms()["SASL-HMAC-PLUS"]);
		assert.are.equal(rsa_binding, p:channel_binding("tls-server-end-point"));
		assert.are.equal(0, asked);
		-- a certificate file that cannot be read: no binding, none advertised, and -PLUS offered only
		-- for the stream's other bindings; one warning
		local gone, _, seen = handler({ tls_server_end_point_hash = "auto" }, dir .. "/missing.crt");
		assert.is_nil(gone.cb_handlers["tls-server-end-point"]);
		assert.is_nil(rawget(gone, "end_point_added"));
		assert.is_true(gone:mechanisms()["SASL-HMAC-PLUS"], "tls-exporter is still there");
		local f = st.stanza("stream:features");
		f:tag("mechanisms", { xmlns = "urn:ietf:params:xml:ns:xmpp-sasl" }):tag("mechanism"):text("X"):up():up();
		seen.hooks["stream-features"].handler({ origin = { sasl_handler = gone }, features = f });
		assert.is_nil(f:get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0"));
		local garbage = dir .. "/garbage.crt";
		local g = assert(io.open(garbage, "w")); g:write("not a certificate\n"); g:close();
		local only, offered, garbage_seen = handler({ tls_server_end_point_hash = "auto" }, garbage, nil, true);
		assert.is_nil(only.cb_handlers and only.cb_handlers["tls-server-end-point"]);
		assert.is_nil(offered["SASL-HMAC-PLUS"], "no binding at all: no -PLUS");
		local warned = 0;
		for _, l in ipairs(garbage_seen.logs) do
			if l.level == "warn" and l.text:find("could not be read", 1, true) then warned = warned + 1; end
			assert.falsy(l.level == "error", l.text);
		end
		assert.are.equal(1, warned);
	end);

	it("advertises the added binding with mod_saslauth's (XEP-0440)", function()
		local function features_for(h, seen, with_cb)
			local hook = assert(seen.hooks["stream-features"]);
			assert.is_true(hook.priority < 0, "after mod_saslauth's");
			local f = st.stanza("stream:features");
			f:tag("mechanisms", { xmlns = "urn:ietf:params:xml:ns:xmpp-sasl" }):tag("mechanism"):text("X"):up():up();
			if with_cb then
				f:tag("sasl-channel-binding", { xmlns = "urn:xmpp:sasl-cb:0" }):tag("channel-binding", { type = "tls-exporter" }):up():up();
			end
			hook.handler({ origin = { sasl_handler = h }, features = f });
			local types = {};
			local advertised = f:get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0");
			for _, el in ipairs(advertised and advertised.tags or {}) do types[#types+1] = el.attr.type; end
			return types;
		end
		local added, _, seen = handler({ tls_server_end_point_hash = "auto" }, rsa_crt);
		assert.same({ "tls-exporter", "tls-server-end-point" }, features_for(added, seen, true));
		assert.same({ "tls-server-end-point" }, features_for(added, seen, false));
		local own, _, own_seen = handler({ tls_server_end_point_hash = "auto" }, rsa_crt, function () return "x"; end);
		assert.same({ "tls-exporter" }, features_for(own, own_seen, true), "mod_saslauth advertised its own already");
	end);
end);


-- Sign-out from the web app (docs/signout.md): the endpoint, what an accepted request does to the
-- user's sessions, storage and logins, and the shim's own error paths (storage failures, budgets)
-- that the live tests cannot reach.
describe("mod_auth_hmac sign-out #prosody", function()
	local hmac, base64 = nil, nil;
	local nonces = 0;
	-- a request line as docs/signout.md states it, made here with Prosody's util.hashes
	local function signout_line(secret, jid, time)
		hmac = hmac or require "util.hashes".hmac_sha256;
		base64 = base64 or require "util.encodings".base64.encode;
		nonces = nonces + 1;
		local nonce = ("%032d"):format(nonces);
		local key = hmac(secret, "\0prosody-auth-hmac signout key v1");
		local m = "prosody-auth-hmac signout v1\0" .. string.pack(">I8", time) .. nonce .. string.pack(">I2", #jid) .. jid;
		return ("v1 %d %s %s %s"):format(time, nonce, jid, base64(hmac(key, m)));
	end

	local T = 1800000000; -- a step boundary (30 s) plus 0: tokens of T's step are signed out
	local function setup(extra, stores)
		env.shared = {};
		local provider, seen, auth_seen = load(base_options(extra or { token_signout = true }), stores);
		local now = T + 5;
		auth_seen.sasl_env.token_clock = function() return now; end
		auth_seen.sasl_env.failure_clock = function() return now; end
		local closed = {};
		local function stream(user, kind)
			local session = { username = user, host = HOST, type = kind, ip = "192.0.2.50" };
			function session.close(self, reason)
				self.destroyed = true;
				closed[#closed+1] = { self.username, self.type, reason.condition, reason.text };
			end
			return session;
		end
		auth_seen.env.prosody.hosts = { [HOST] = { sessions = {} } };
		local x = {
			provider = provider, seen = seen, auth_seen = auth_seen, closed = closed, stream = stream,
			secret = env.vectors().secrets[1],
			set_now = function(t) now = t; end,
		};
		function x.post(body, ip)
			local response = { headers = {} };
			local text = auth_seen.provided.http.route["POST /signout"]({
				request = { ip = ip or "192.0.2.40", body = body }, response = response });
			return response.status_code, text;
		end
		function x.login(user, t)
			local h = provider.get_sasl_handler({ secure = true, ip = "192.0.2.51" });
			assert.is_true(h:select("PLAIN"));
			return h:process("\0" .. user .. "\0" .. provider.get_verifier():mint(user .. "@" .. HOST, t or now));
		end
		return x;
	end

	it("is absent without token_signout", function()
		local x = setup({});
		assert.is_nil(x.auth_seen.provided.http);
	end);

	it("ends every session of the user, stores the record and refuses the user's tokens of that step", function()
		local x = setup();
		local c2s, bosh = {}, {};
		env.shared["/*/c2s/sessions"], env.shared["/*/bosh/sessions"] = c2s, bosh;
		local bound = x.stream("olga", "c2s");
		local hibernating = x.stream("olga", "c2s"); -- no connection, still in the user's table
		x.auth_seen.env.prosody.hosts[HOST].sessions.olga = { sessions = { r1 = bound, r2 = hibernating } };
		c2s.conn1 = bound;
		c2s.conn2 = x.stream("olga", "c2s_unbound"); -- logged in, not bound (also WebSocket)
		bosh.sid1 = x.stream("olga", "c2s_unbound"); -- BOSH, not bound
		c2s.conn3 = x.stream("pia", "c2s");
		c2s.conn4 = { host = HOST, type = "c2s_unauthed" }; -- not logged in: no username
		local elsewhere = x.stream("olga", "c2s");
		elsewhere.host = "other.example"; -- the same name on another host
		c2s.conn5 = elsewhere;
		local before = { secure = true, username = "olga", auth_hmac_generation = 0, ip = "192.0.2.52" };
		assert.same({ 200, "accepted" }, { x.post(signout_line(x.secret, "olga@" .. HOST, T)) });
		assert.are.equal(4, #x.closed);
		for _, c in ipairs(x.closed) do
			assert.same({ "olga", "not-authorized", "Signed out by the web site" }, { c[1], c[3], c[4] });
		end
		assert.is_not_nil(x.auth_seen.stores.auth_hmac_signout.olga);
		local last = x.auth_seen.logs[#x.auth_seen.logs].text;
		assert.truthy(last:find("Signed out olga@example.org at the request of 192.0.2.40: 4 sessions ended", 1, true), last);
		-- a token of the sign-out's step: signed-out; the next step's logs in
		local status, condition = x.login("olga");
		assert.same({ "failure", "not-authorized" }, { status, condition });
		assert.truthy(x.seen.logs[#x.seen.logs].text:find("token login for olga@example.org from 192.0.2.51: signed-out", 1, true),
			x.seen.logs[#x.seen.logs].text);
		-- every login path asks: SASL-HMAC, X-TOKEN, test_password (mod_legacyauth, mod_rest)
		local verifier = x.provider.get_verifier();
		for _, mech in ipairs({ "SASL-HMAC", "X-TOKEN" }) do
			local h = x.provider.get_sasl_handler({ secure = true, ip = "192.0.2.51" });
			local st, cond = exchange(h, mech, "olga", verifier:mint("olga@" .. HOST, T + 5));
			assert.same({ "failure", "not-authorized" }, { st, cond });
			assert.truthy(x.seen.logs[#x.seen.logs].text:find(": signed-out", 1, true), x.seen.logs[#x.seen.logs].text);
		end
		assert.same({ nil, "signed-out" }, { x.provider.test_password("olga", verifier:mint("olga@" .. HOST, T + 5)) });
		assert.are.equal("success", (x.login("pia")));
		x.set_now(T + 31);
		assert.are.equal("success", (x.login("olga")));
		-- a stream that logged in before the sign-out (count 0) cannot bind; one after it can
		local bind = x.auth_seen.hooks["pre-resource-bind"].handler;
		local event = { session = before };
		assert.is_false(bind(event));
		assert.same({ type = "cancel", condition = "not-allowed", text = "Signed out by the web site" }, event.error);
		local after = { username = "olga", auth_hmac_generation = 1, ip = "192.0.2.52" };
		assert.is_nil(bind({ session = after }));
		assert.is_nil(bind({ session = { username = "pia", ip = "192.0.2.52" } })); -- never signed out
		-- nor resume inline in SASL2 (mod_sasl2_sm): between mod_sasl2's login and the resumption
		local st = require "util.stanza";
		local inline = x.auth_seen.hooks["sasl2/c2s/success"];
		assert.is_true(inline.priority > 110 and inline.priority < 1000, tostring(inline.priority));
		local function sasl2_resume(session)
			session.sasl2_sm_request = st.stanza("resume", { xmlns = "urn:xmpp:sm:3", previd = "p", h = "0" });
			local ev = { session = session, success = st.stanza("success", { xmlns = "urn:xmpp:sasl:2" }) };
			inline.handler(ev);
			return ev.success, session.sasl2_sm_request;
		end
		local success, request = sasl2_resume({ username = "olga", auth_hmac_generation = 0, ip = "192.0.2.53" });
		assert.is_nil(request);
		local failed = success:get_child("failed", "urn:xmpp:sm:3");
		assert.is_not_nil(failed, tostring(success));
		assert.is_not_nil(failed:get_child("forbidden", "urn:ietf:params:xml:ns:xmpp-stanzas"), tostring(success));
		local logged = x.auth_seen.logs[#x.auth_seen.logs].text;
		assert.truthy(logged:find("Refused a stream resumption for olga@example.org from 192.0.2.53: signed out by the web site", 1, true), logged);
		success, request = sasl2_resume({ username = "olga", auth_hmac_generation = 1, ip = "192.0.2.53" });
		assert.are.equal("resume", request.name);
		assert.is_nil(success:get_child("failed", "urn:xmpp:sm:3"));
		-- an <enable/> (Bind 2's) is no resumption: left to mod_sasl2_sm
		local enable = { username = "olga", auth_hmac_generation = 0, ip = "192.0.2.53",
			sasl2_sm_request = st.stanza("enable", { xmlns = "urn:xmpp:sm:3" }) };
		inline.handler({ session = enable, success = st.stanza("success", { xmlns = "urn:xmpp:sasl:2" }) });
		assert.are.equal("enable", enable.sasl2_sm_request.name);
	end);

	it("refuses what fails a check with 403 and one budgeted line per address, never a valid request", function()
		local x = setup({ token_signout = true, token_max_failures_per_address = 3 });
		local forged = signout_line(x.secret .. "x", "olga@" .. HOST, T);
		for _ = 1, 6 do
			assert.same({ 403, "refused" }, { x.post(forged, "198.51.100.9") });
		end
		local lines = 0;
		for _, l in ipairs(x.auth_seen.logs) do
			if l.text:find("Refused sign-out request for olga@example.org from 198.51.100.9: bad-signature", 1, true) then
				lines = lines + 1;
			end
		end
		assert.are.equal(3, lines);
		assert.is_nil(x.auth_seen.stores.auth_hmac_signout.olga);
		-- the same address, a valid request: accepted
		assert.same({ 200, "accepted" }, { x.post(signout_line(x.secret, "olga@" .. HOST, T), "198.51.100.9") });
		-- a missing or oversized body is refused unread
		assert.same({ 403, "refused" }, { x.post(nil) });
		assert.same({ 403, "refused" }, { x.post(signout_line(x.secret, "olga@" .. HOST, T) .. (" "):rep(5000)) });
		assert.truthy(x.auth_seen.logs[#x.auth_seen.logs].text:find("Refused sign-out request for (unknown) from 192.0.2.40: malformed", 1, true),
			x.auth_seen.logs[#x.auth_seen.logs].text);
		-- other methods
		local response = { headers = {} };
		x.auth_seen.provided.http.route["GET /signout"]({ request = {}, response = response });
		assert.same({ 405, "POST" }, { response.status_code, response.headers.allow });
	end);

	it("answers 500 when the record cannot be written or read, ends the sessions, and never writes a record built blind", function()
		local stores = { fail_writes = { auth_hmac_signout = true } };
		local x = setup(nil, stores);
		env.shared["/*/c2s/sessions"] = { conn1 = x.stream("olga", "c2s") };
		assert.same({ 500, "error" }, { x.post(signout_line(x.secret, "olga@" .. HOST, T)) });
		assert.are.equal(1, #x.closed);
		assert.are.equal("error", x.auth_seen.logs[#x.auth_seen.logs].level);
		-- unreadable: not written (it could move the stored time back), the sessions still end
		stores.fail_writes, stores.fail_reads = nil, { auth_hmac_signout = true };
		env.shared["/*/c2s/sessions"] = { conn1 = x.stream("olga", "c2s") };
		assert.same({ 500, "error" }, { x.post(signout_line(x.secret, "olga@" .. HOST, T)) });
		assert.are.equal(2, #x.closed);
		assert.is_nil(x.auth_seen.stores.auth_hmac_signout.olga);
		-- and a login whose record cannot be read is refused (internal-error), with an error line
		assert.are.equal("failure", (x.login("olga")));
		local found = false;
		for _, l in ipairs(x.auth_seen.logs) do
			found = found or (l.level == "error" and l.text:find("Cannot read the sign-out record of olga@example.org", 1, true) ~= nil);
		end
		assert.is_true(found);
		assert.truthy(x.seen.logs[#x.seen.logs].text:find("olga@example.org from 192.0.2.51: internal-error", 1, true),
			x.seen.logs[#x.seen.logs].text);
	end);

	it("logs an error for a stored record that fails its check, and refuses that step's tokens", function()
		local x = setup();
		assert.same({ 200, "accepted" }, { x.post(signout_line(x.secret, "olga@" .. HOST, T - 30)) });
		local record = x.auth_seen.stores.auth_hmac_signout.olga;
		-- moved to another user: its seal covers the username
		x.auth_seen.stores.auth_hmac_signout.pia = record;
		assert.are.equal("failure", (x.login("pia")));
		local last_error;
		for _, l in ipairs(x.auth_seen.logs) do if l.level == "error" then last_error = l.text; end end
		assert.truthy(last_error and last_error:find("The stored sign-out record of pia@example.org fails its check", 1, true), last_error);
		local errors = 0;
		for _, l in ipairs(x.auth_seen.logs) do if l.level == "error" then errors = errors + 1; end end
		-- asked a step later, the same record still counts from when it was first found bad: the
		-- next step's tokens log in, and it is not logged again
		x.set_now(T + 31);
		assert.are.equal("success", (x.login("pia")));
		local errors_after = 0;
		for _, l in ipairs(x.auth_seen.logs) do if l.level == "error" then errors_after = errors_after + 1; end end
		assert.are.equal(errors, errors_after);
		assert.are.equal("success", (x.login("olga"))); -- her own record, valid: signed out at T - 30
	end);

	it("keeps a stored time ahead of a clock set back: the user's tokens stay refused, nothing logged", function()
		local x = setup();
		assert.same({ 200, "accepted" }, { x.post(signout_line(x.secret, "olga@" .. HOST, T + 60)) });
		x.set_now(T - 86400);
		assert.are.equal("failure", (x.login("olga")));
		x.set_now(T + 4);
		-- a token of the step after the sign-out's own, which otp_skew accepts at T + 4
		assert.are.equal("failure", (x.login("olga", T + 30)));
		for _, l in ipairs(x.auth_seen.logs) do assert.are_not.equal("error", l.level, l.text); end
		x.set_now(T + 90);
		assert.are.equal("success", (x.login("olga")));
	end);
end);

