-- The native module as Lua sees it: vectors, failure values, misuse.
local env = require "spec.helpers.env";

describe("native module", function()
	local native = env.native();
	local doc = env.vectors();
	local function verifier(overrides)
		local cfg = { token_secret = doc.secrets, otp_seed = doc.otp_seed, host = doc.host,
			otp_digits = doc.digits, otp_step = doc.step, otp_skew = doc.skew,
			token_allow_weak_secrets = true }; -- the vectors' published example values
		for k, v in pairs(overrides or {}) do cfg[k] = v; end
		return native.verifier(cfg);
	end

	it("exports its version, mechanisms and reasons", function()
		assert.is_string(native.version);
		assert.same({ "PLAIN", "X-TOKEN", "SASL-HMAC", "SASL-HMAC-PLUS" }, native.mechanisms);
		assert.are.equal(16, #native.reasons);
	end);

	-- what luarocks search and prosodyctl show an admin: every mechanism the module offers, by name
	it("is described in the rockspec with every mechanism it offers", function()
		local path = env.repo .. "/prosody-auth-hmac-" .. native.version .. "-1.rockspec";
		local spec = {};
		local chunk;
		if setfenv then -- COMPAT: Lua 5.1 and LuaJIT have no load() with an environment
			chunk = assert(loadfile(path));
			setfenv(chunk, spec);
		else
			chunk = assert(load(env.read(path), "@" .. path, "t", spec));
		end
		chunk();
		local text = (spec.description.summary .. " " .. spec.description.detailed):gsub("%s+", " ");
		for _, mech in ipairs(native.mechanisms) do
			assert.truthy(text:find(mech, 1, true), mech .. " is not named in the rockspec's description");
		end
	end);

	it("agrees with every cross-language vector, in order", function()
		local v = assert(verifier());
		local positives, negatives = 0, 0;
		for _, c in ipairs(doc.cases) do
			local step, reason = v:verify(c.token, c.jid, c.now);
			if c.result == "ok" then
				assert.are.equal(c.step, step, c.name .. ": " .. tostring(reason));
				positives = positives + 1;
			else
				assert.is_nil(step, c.name);
				assert.are.equal(c.result, reason, c.name);
				negatives = negatives + 1;
			end
		end
		assert.truthy(positives >= 5 and negatives >= 20);
	end);

	it("mints tokens that verify once", function()
		local v = assert(verifier());
		local t = assert(v:mint("zoe@example.org"));
		assert.truthy(t:match("^%d+ [%w+/]+=$"));
		assert.is_number(v:verify(t, "zoe@example.org"));
		local step, reason = v:verify(t, "zoe@example.org");
		assert.is_nil(step);
		assert.are.equal("replayed", reason);
		assert.same({ nil, "wrong-host" }, { v:mint("zoe@elsewhere.org") });
	end);

	it("matches the second of several candidate JIDs and says which", function()
		local v = assert(verifier());
		local t = assert(v:mint("yan@example.org"));
		local step, which = v:verify(t, { "Yan@example.org", "yan@example.org" });
		assert.is_number(step);
		assert.are.equal(2, which);
	end);

	it("reports configuration errors by option name, never by value", function()
		local cases = {
			{ { otp_seed = "not base32!" }, "otp_seed is not valid base32" },
			{ { otp_seed = false }, "otp_seed must be a string" },
			{ { token_secret = {} }, "token_secret is not set" },
			{ { token_secret = { "" } }, "token_secret must not be empty" },
			{ { token_secret = { 42 } }, "token_secret must be a string or a list of strings" },
			{ { otp_digits = 9 }, "otp_digits must be between 6 and 8" },
			{ { otp_step = 0 }, "otp_step must be between 1 and 86400" },
			{ { otp_step = 1.5 }, "otp_step must be a non-negative integer" },
			{ { otp_skew = 11 }, "otp_skew must be between 0 and 10" },
			{ { token_replay_cache_size = 0 }, "token_replay_cache_size must be at least 1" },
			{ { token_nonce_digits = 15 }, "token_nonce_digits must be between 16 and 64, not 15" },
			{ { token_nonce_digits = 65 }, "token_nonce_digits must be between 16 and 64, not 65" },
			{ { token_nonce_digits = "32" }, "token_nonce_digits must be a non-negative integer" },
			{ { token_jid_as_sent = "yes" }, "token_jid_as_sent must be true or false" },
		};
		for _, c in ipairs(cases) do
			local v, err = verifier(c[1]);
			assert.is_nil(v);
			assert.are.equal(c[2], err:sub(1, #c[2]));
			assert.falsy(err:find(doc.secrets[1], 1, true));
		end
	end);

	it("never shows a secret in tostring", function()
		local v = assert(verifier());
		local s = tostring(v);
		assert.truthy(s:find("***", 1, true));
		assert.falsy(s:find(doc.secrets[1], 1, true));
		assert.falsy(s:find(doc.otp_seed, 1, true));
	end);

	it("raises on misuse of the API", function()
		local v = assert(verifier());
		assert.has_error(function() native.verifier("nope"); end);
		assert.has_error(function() v:verify(12345678, "a@example.org"); end); -- OTPs are never numbers
		assert.has_error(function() v:verify("1 x", 42); end);
		assert.has_error(function() v:verify("1 x", "a@example.org", -1); end);
		assert.has_error(function() v:verify("1 x", "a@example.org", "now"); end);
		assert.has_error(function() v:mint(nil); end);
		assert.has_error(function() v:exchange(1); end);
		local ex = v:exchange("PLAIN");
		assert.has_error(function() ex:step("\0a\0b", "not a function"); end);
		assert.has_error(function() v:running_state_stored("yes"); end);
		assert.has_error(function() v:running_state_stored(); end);
	end);

	-- reading the state is not a stop: only seal_replay_state() ends token logins
	it("reads the replay state without side effects, and seals it only when asked", function()
		local v = assert(verifier());
		local function login(who) return v:verify(v:mint(who .. "@example.org"), who .. "@example.org"); end
		assert.is_number(login("a"));
		local looked = v:replay_state();
		assert.are.equal(1, #looked.entries);
		assert.is_number(login("b"), "a login after replay_state()");
		assert.is_number(login("c"));
		local sealed = v:seal_replay_state();
		assert.are.equal(3, #sealed.entries);
		assert.same({ nil, "unclean-restart" }, { login("d") });
		assert.same(sealed, v:replay_state());
		assert.same(sealed, v:seal_replay_state());
	end);

	-- the table is converted field by field; src/replay_state.rs reads it (its unit tests have the cases)
	it("takes back its own replay state, and nothing that does not read as one", function()
		local v = assert(verifier({ token_replay_cache_size = 2 }));
		for _, who in ipairs({ "a", "b" }) do assert.is_number(v:verify(v:mint(who .. "@example.org"), who .. "@example.org")); end
		local state = v:seal_replay_state();
		local function copy(edit)
			local t = {};
			for k, x in pairs(state) do t[k] = x; end
			t.entries = {};
			for i, e in ipairs(state.entries) do t.entries[i] = e; end
			edit(t);
			return t;
		end
		local function start(stored) return assert(verifier({ token_replay_cache_size = 2 })):restore_replay_state(stored); end
		assert.same({ "clean", 2 }, { start(copy(function() end)).outcome, start(copy(function() end)).taken });
		local unreadable = "the saved replay state is unreadable";
		for name, edit in pairs({
			negative = function(t) t.quarantine = -1; end,
			nested = function(t) t.entries[2] = { t.entries[2] }; end,
			number = function(t) t.entries[1] = 5; end,
			plus = function(t) t.entries[1] = t.entries[1]:gsub(" ", " +"); end,
			mac_table = function(t) t.mac = { t.mac }; end,
			huge_mac = function(t) t.mac = ("11"):rep(100000); end, -- hex, but too long to be copied and read
		}) do
			local s = start(copy(edit));
			assert.same({ "unclean", unreadable }, { s.outcome, s.refused }, name);
		end
		-- counted before any entry is read: three of anything is too many for a cache of two
		local s = start(copy(function(t) t.entries = { 1, {}, false }; end));
		assert.same({ "unclean", "the saved replay state holds more entries than token_replay_cache_size" }, { s.outcome, s.refused });
	end);

	-- storage is untrusted and a stored list has no bound of its own: of a list under `entries` the
	-- core reads one item more than the cache holds, of a list anywhere else none
	it("reads no more of a stored list than the replay cache holds", function()
		local state = assert(verifier({ token_replay_cache_size = 2 })):seal_replay_state();
		local long = {};
		local line = ("07"):rep(16) .. " 1000";
		for i = 1, 2 + 1000000 do long[i] = line; end
		-- the process's peak and current resident memory in kB (the Rust heap too, which Lua's count
		-- misses); nil where Linux does not show them
		local function memory()
			local f = io.open("/proc/self/status");
			if not f then return nil; end
			local status = f:read("*a");
			f:close();
			return tonumber(status:match("VmHWM:%s*(%d+)")), tonumber(status:match("VmRSS:%s*(%d+)"));
		end
		-- the peak reset to the current size (clear_refs 5), or nil where it cannot be
		local function resident()
			local clear = io.open("/proc/self/clear_refs", "w");
			if not clear then return nil; end
			clear:write("5");
			clear:close();
			local peak, now = memory();
			if not (peak and now) or peak > now + 1024 then return nil; end
			return peak;
		end
		for name, refused in pairs({
			entries = "the saved replay state holds more entries than token_replay_cache_size",
			mac = "the saved replay state is unreadable",
			high_water = "the saved replay state is unreadable",
		}) do
			local t = {};
			for k, x in pairs(state) do t[k] = x; end
			t[name] = long;
			local v = assert(verifier({ token_replay_cache_size = 2 }));
			collectgarbage();
			local before = resident();
			local s = v:restore_replay_state(t);
			local after = before and memory();
			assert.same({ "unclean", refused }, { s.outcome, s.refused }, name);
			-- a copy of the list would take some 50 MB
			if before and after then assert.is_true(after - before < 8 * 1024, name .. ": +" .. (after - before) .. " kB"); end
		end
	end);

	it("runs PLAIN and X-TOKEN exchanges (with Prosody's nodeprep) #prosody", function()
		local v = assert(verifier());
		for _, mech in ipairs({ "PLAIN", "X-TOKEN" }) do
			local t = v:mint("uma@example.org");
			local ex = v:exchange(mech);
			assert.are.equal(mech, ex:mechanism());
			-- sent as "Uma": the signature covers the nodeprep'd JID, the session's account
			assert.same({ "success", "uma" }, { ex:step("\0Uma\0" .. t, env.nodeprep) });
			assert.are.equal("uma@example.org", ex:attempted_jid());
			-- an exchange is single-use
			assert.same({ "failure", "malformed" }, { ex:step("\0Uma\0" .. t, env.nodeprep) });
			-- a signature over the name as sent is not the account's (strict by default)
			assert.same({ "failure", "bad-signature" },
				{ v:exchange(mech):step("\0Uma\0" .. v:mint("Uma@example.org"), env.nodeprep) });
		end
		assert.is_nil(v:exchange("SCRAM-SHA-1"));
		local function fails(msg, reason)
			assert.same({ "failure", reason }, { v:exchange("PLAIN"):step(msg, env.nodeprep) });
		end
		fails(nil, "malformed");
		fails("", "malformed");
		fails("\0vic\0", "malformed");
		fails("\0vic\0" .. v:mint("val@example.org"), "bad-signature");
		fails("bob@example.org\0vic\0" .. v:mint("vic@example.org"), "invalid-authzid");
		fails("\0vic@other.org\0" .. v:mint("vic@example.org"), "wrong-host");
		fails("\0vi\0c\0x", "malformed");
		fails("\0vic\0" .. string.rep("1", 2000) .. " x", "malformed");
		local t = v:mint("vic@example.org");
		assert.same({ "success", "vic" }, { v:exchange("X-TOKEN"):step("vic@example.org\0vic@example.org\0" .. t, env.nodeprep) });
		fails("\0vic\0" .. t, "replayed");
	end);

	-- The verifier is a userdata: its methods take it as self and raise for anything else (above);
	-- an exchange holds the verifier's core, so it works after the verifier object is collected.
	-- Every call balances the Lua stack and raises only for misuse.
	it("keeps its core alive for an exchange through garbage collection, and the stack balanced", function()
		local v = assert(verifier());
		local verify = v.verify; -- the method itself, called below with v as self
		local tokens, exchanges = {}, {};
		for i = 1, 50 do tokens[i], exchanges[i] = v:mint("gc" .. i .. "@example.org"), v:exchange("PLAIN"); end
		local last = v:mint("gc51@example.org");
		for i = 1, 25 do
			assert.is_number(verify(v, tokens[i], { "x@example.org", "gc" .. i .. "@example.org" }));
			assert.same({ nil, "replayed" }, { verify(v, tokens[i], "gc" .. i .. "@example.org") });
		end
		local ok, err = pcall(verify, v, tokens[1], { "a@example.org", 7 });
		assert.is_false(ok);
		assert.truthy(tostring(err):find("bad argument 'jids[]' (string expected", 1, true), tostring(err));
		assert.has_error(function() verify(v, tokens[1], {}, 1.5); end);
		assert.same({ nil, "malformed" }, { verify(v, tokens[1], {}) });
		assert.same({ nil, "malformed" }, { verify(v, "1 x", "\255@example.org") });
		v = nil; -- luacheck: ignore 311
		collectgarbage("collect"); collectgarbage("collect");
		for i = 26, 50 do
			assert.same({ "success", "gc" .. i }, { exchanges[i]:step("\0gc" .. i .. "\0" .. tokens[i], string.lower) });
		end
		-- the replay cache is the collected verifier's: a token it accepted stays used
		assert.same({ "failure", "replayed" }, { exchanges[1]:step("\0gc1\0" .. tokens[1], string.lower) });
		assert.same({ "success", "gc51" }, { exchanges[2]:step("\0gc51\0" .. last, string.lower) });
	end);

	-- v.verify(token, jid) passes the token as self: every method says to call it with ':'
	it("refuses a method called with '.' instead of ':', naming the method and the fix", function()
		local v = assert(verifier());
		local t = v:mint("dot@example.org");
		local calls = {
			verify = { t, "dot@example.org" }, verify_user = { t, "dot", string.lower }, mint = { "dot@example.org" },
			exchange = { "PLAIN" }, replay_state = {}, seal_replay_state = {}, running_state = {},
			running_state_stored = { true }, restore_replay_state = { nil }, stats = {},
			signout = { "v1", nil, function() end, string.lower }, signed_out_at = { "dot", nil },
		};
		local unpack = table.unpack or unpack; -- COMPAT: Lua 5.1 and LuaJIT have only the global
		local n = 0;
		for name, args in pairs(calls) do
			n = n + 1;
			assert.is_function(v[name], name);
			local ok, err = pcall(v[name], unpack(args));
			assert.is_false(ok, name);
			local text = tostring(err);
			assert.truthy(text:find("verifier:" .. name, 1, true), text);
			assert.truthy(text:find("v:" .. name .. "(...), not v." .. name .. "(...)", 1, true), text);
			-- another userdata (an exchange) is not a verifier either
			local ok2, err2 = pcall(v[name], v:exchange("PLAIN"), unpack(args));
			assert.is_false(ok2, name);
			assert.truthy(tostring(err2):find("with a userdata as self", 1, true), tostring(err2));
		end
		assert.are.equal(12, n);
		-- nothing of the dot-calls happened: the token was never used, and logins are not sealed
		assert.is_number(v:verify(t, "dot@example.org"));
		assert.are.equal("userdata", type(v));
		assert.are.equal(false, getmetatable(v));
	end);

	-- The same contract without Prosody's util.encodings, so it runs on every interpreter: the
	-- exchange prepares the username with whatever function it is given, and a refusal by that
	-- function is a refusal of the login.
	-- The public part has exactly otp_digits + token_nonce_digits digits: nothing shorter or longer
	-- is looked at, so a nonce digit can never be read as the first digit of a localpart.
	it("refuses a public part of any other length as malformed, in every entry point", function()
		local function lower(s) return s:lower(); end
		for _, nonce_digits in ipairs({ 16, 32, 64 }) do
			local v = assert(verifier({ token_nonce_digits = nonce_digits }));
			assert.are.equal(nonce_digits, v:stats().token_nonce_digits);
			local t = assert(v:mint("5@example.org"));
			local public, mac = t:match("^(%d+) (.+)$");
			assert.are.equal(8 + nonce_digits, #public);
			for k = 1, 3 do
				local shifted = public:sub(1, -k - 1) .. " " .. mac;
				local victim = public:sub(-k) .. "5@example.org";
				assert.same({ nil, "malformed" }, { v:verify(shifted, victim) });
				assert.same({ nil, "malformed" }, { v:verify(shifted, { "x@example.org", victim }) });
				assert.same({ nil, "malformed" }, { v:verify_user(shifted, public:sub(-k) .. "5", lower) });
				assert.same({ "failure", "malformed" },
					{ v:exchange("PLAIN"):step("\0" .. public:sub(-k) .. "5\0" .. shifted, lower) });
				assert.same({ "failure", "malformed" },
					{ v:exchange("SASL-HMAC"):step("\0" .. public:sub(-k) .. "5\0" .. public:sub(1, -k - 1), lower) });
				-- and the other way: a localpart digit appended to the nonce
				assert.same({ nil, "malformed" }, { v:verify(public .. "3 " .. mac, "5@example.org") });
			end
			assert.are.equal("5", (v:verify_user(t, "5", lower)));
		end
		local v32 = assert(verifier());
		local t20 = assert(verifier({ token_nonce_digits = 20 })):mint("ann@example.org");
		assert.same({ nil, "malformed" }, { v32:verify(t20, "ann@example.org") });
	end);

	it("verifies users by the nodeprep'd JID only, unless token_jid_as_sent", function()
		local function lower(s) return s:lower(); end
		local strict, lax = assert(verifier()), assert(verifier({ token_jid_as_sent = true }));
		assert.is_false(strict:stats().token_jid_as_sent);
		assert.is_true(lax:stats().token_jid_as_sent);
		for _, v in ipairs({ strict, lax }) do
			assert.are.equal("amy", (v:verify_user(v:mint("amy@example.org"), "Amy", lower)));
		end
		assert.same({ nil, "bad-signature" }, { strict:verify_user(strict:mint("Amy@example.org"), "Amy", lower) });
		assert.are.equal("amy", (lax:verify_user(lax:mint("Amy@example.org"), "Amy", lower)));
		assert.same({ "failure", "bad-signature" },
			{ strict:exchange("X-TOKEN"):step("\0Amy\0" .. strict:mint("Amy@example.org"), lower) });
		assert.same({ "success", "amy" }, { lax:exchange("X-TOKEN"):step("\0Amy\0" .. lax:mint("Amy@example.org"), lower) });
		assert.same({ nil, "malformed" }, { strict:verify_user(strict:mint("amy@example.org"), "amy@example.org", lower) });
		assert.same({ nil, "malformed" }, { strict:verify_user(strict:mint("amy@example.org"), "amy", function() return nil; end) });
		assert.has_error(function() strict:verify_user("1 x", "amy"); end);
		assert.has_error(function() strict:verify_user("1 x", 5, lower); end);
	end);

	it("prepares the username with the function it is given", function()
		local v = assert(verifier());
		local seen = {};
		local function prep(s)
			seen[#seen+1] = s;
			if s:find("!", 1, true) then return nil; end
			return s:lower();
		end
		local t = v:mint("uma@example.org");
		assert.same({ "success", "uma" }, { v:exchange("PLAIN"):step("\0Uma\0" .. t, prep) });
		assert.same({ "Uma" }, seen);
		assert.same({ "failure", "malformed" }, { v:exchange("PLAIN"):step("\0Um!a\0" .. v:mint("Um!a@example.org"), prep) });
	end);

	-- Loading the shims needs Prosody's compiled util.* (5.4 only here), but their syntax must be
	-- that of every interpreter Prosody runs on (no 5.3 integer division or bit operators in 5.1).
	it("has shims that compile on this interpreter", function()
		for _, name in ipairs({ "mod_auth_hmac", "mod_sasl_hmac" }) do
			local chunk, err = loadfile(env.repo .. "/lua/" .. name .. ".lua");
			assert.is_function(chunk, tostring(err));
		end
	end);

	it("reports replay-cache use", function()
		local v = assert(verifier({ token_replay_cache_size = 2 }));
		for _, who in ipairs({ "a", "b" }) do
			assert.is_number(v:verify(v:mint(who .. "@example.org"), who .. "@example.org"));
		end
		assert.same({ nil, "cache-full" }, { v:verify(v:mint("c@example.org"), "c@example.org") });
		local stats = v:stats();
		assert.are.equal(2, stats.replay_entries);
		assert.are.equal(2, stats.token_replay_cache_size);
		-- the options under the names the configuration uses (they were digits, step, skew, ...)
		assert.same({ doc.digits, doc.step, doc.skew }, { stats.otp_digits, stats.otp_step, stats.otp_skew });
		assert.are.equal(native.defaults.token_nonce_digits, stats.token_nonce_digits);
		assert.are.equal(native.defaults.token_replay_user_quota, stats.token_replay_user_quota);
		assert.is_false(stats.token_jid_as_sent);
		assert.is_nil(stats.digits or stats.step or stats.skew or stats.nonce_digits or stats.jid_as_sent);
	end);
	-- Sign-out (docs/signout.md): the vectors of tests/vectors/generate_signout.py, the record the
	-- shim stores, and the signed_out argument of every login path.
	describe("sign-out", function()
		local sdoc = require("dkjson").decode(env.read(env.repo .. "/tests/vectors/signout.json"));
		local function sverifier(overrides)
			local cfg = { token_secret = sdoc.secrets, otp_seed = sdoc.otp_seed, host = sdoc.host,
				otp_digits = sdoc.digits, otp_step = sdoc.step, otp_skew = sdoc.skew };
			for k, v in pairs(overrides or {}) do cfg[k] = v; end
			return assert(native.verifier(cfg));
		end
		-- nodeprep for the ASCII cases when Prosody's is not there: lower case, which is what it does to them
		local function lower(s) return s:lower(); end
		local plain = sdoc.cases[1];
		assert(plain.name == "plain" and plain.expect == "accepted");

		it("agrees with every sign-out vector #prosody", function()
			local n = 0;
			for _, c in ipairs(sdoc.cases) do
				if not c.beyond_2_53 then -- dkjson reads it as a float, which rounds
					local v, store = sverifier(), {};
					local function load(user) return store[user]; end
					for _, b in ipairs(c.before or {}) do
						local user, record = v:signout(b.line, b.now, load, env.nodeprep);
						assert(user, c.name .. ": an earlier line was refused: " .. tostring(record));
						store[user] = record;
					end
					local user, record, note = v:signout(c.line, c.now, load, env.nodeprep);
					if c.expect == "accepted" then
						assert.are.equal(c.username, user, c.name);
						assert.is_nil(note, c.name);
						assert.same({ c.signed_out_at }, { v:signed_out_at(user, record, c.now) }, c.name);
					else
						assert.same({ nil, c.expect }, { user, record }, c.name);
					end
					n = n + 1;
				end
			end
			assert.is_true(n > 80, tostring(n));
		end);

		it("reads storage only for an authentic, timely request, and returns a plain record", function()
			local v, asked = sverifier(), {};
			local function load(user) asked[#asked + 1] = user; return nil; end
			local forged = plain.line:gsub("%S+$", string.rep("A", 43) .. "=");
			assert.same({ nil, "bad-signature" }, { v:signout(forged, plain.now, load, lower) });
			assert.same({ nil, "stale" }, { v:signout(plain.line, plain.now + 61, load, lower) });
			assert.same({ nil, "malformed" }, { v:signout(plain.line:gsub("alice", "Alice"), plain.now, load, lower) });
			assert.same({}, asked);
			local user, record, note = v:signout(plain.line, plain.now, load, lower);
			assert.same({ "alice", nil }, { user, note });
			assert.same({ "alice" }, asked);
			-- strings and integers only, stored as they are
			assert.are.equal(1, record.format);
			assert.are.equal(tostring(plain.now), record.time);
			assert.is_string(record.nonces);
			assert.truthy(record.mac:match("^%x+$"));
			for _, value in pairs(record) do assert.truthy(type(value) == "string" or type(value) == "number"); end
			assert.same({ nil, "replayed" }, { v:signout(plain.line, plain.now, function() return record; end, lower) });
			assert.same({ plain.now }, { v:signed_out_at("alice", record, plain.now + 100) });
			assert.same({}, { v:signed_out_at("alice", nil, plain.now) });
		end);

		it("takes a record that fails its check as signed out now, and says so", function()
			local v = sverifier();
			local _, good = v:signout(plain.line, plain.now, function() return nil; end, lower);
			local later = plain.now + 1000;
			local function altered(k, value)
				local r = {};
				for key, x in pairs(good) do r[key] = x; end
				r[k] = value;
				return r;
			end
			local bad = { "not a table", 5, {}, altered("time", "1"), altered("time", plain.now),
				altered("format", 2), altered("mac", good.mac:upper()), altered("nonces", string.rep("1", 1e6)),
				altered("mac", setmetatable({}, { __index = function() error("never read"); end })) };
			for i, record in ipairs(bad) do
				assert.same({ later, "stored-record-invalid" }, { v:signed_out_at("alice", record, later) }, i);
			end
			-- another user's record, or this one under another host's verifier
			assert.same({ later, "stored-record-invalid" }, { v:signed_out_at("bob", good, later) });
			-- a sign-out over a bad record is accepted, with the note
			local fresh = sdoc.cases[3]; -- another nonce, signed under the first secret for bob
			assert.are.equal("accepted", fresh.expect);
			local user, record, note = v:signout(fresh.line, fresh.now, function() return bad[4]; end, lower);
			assert.same({ fresh.username, "stored-record-invalid" }, { user, note });
			assert.are.equal(fresh.now, (v:signed_out_at(user, record, later)));
			-- read with the clock set back: the stored time as it is, nothing to log
			assert.same({ plain.now }, { v:signed_out_at("alice", good, plain.now - 86400) });
		end);

		it("refuses a token minted before a sign-out, asking with the nodeprep'd name", function()
			local v = sverifier();
			local now = 1750000020;
			local asked = {};
			local function signed_out_at(t)
				return function(user) asked[#asked + 1] = user; return t; end
			end
			local t = v:mint("amy@example.org", now);
			assert.same({ nil, "signed-out" }, { v:verify_user(t, "Amy", lower, now, signed_out_at(now)) });
			assert.same({ "failure", "signed-out" }, { v:exchange("PLAIN"):step("\0Amy\0" .. t, lower, now, nil, signed_out_at(now)) });
			assert.same({ "amy", "amy" }, asked);
			-- not used up by the refusals; a sign-out a step earlier lets it in
			assert.are.equal("amy", (v:verify_user(t, "amy", lower, now, signed_out_at(now - 30))));
			local u = v:mint("uma@example.org", now);
			assert.same({ "success", "uma" }, { v:exchange("X-TOKEN"):step("\0uma\0" .. u, lower, now, nil, signed_out_at(nil)) });
		end);

		it("fails a login closed when the lookup errs or answers anything but a time", function()
			local v = sverifier();
			local now = 1750000020;
			for i, lookup in ipairs({ function() error("storage down"); end, function() return "1"; end,
				function() return -1; end, function() return 1.5; end, function() return {}; end }) do
				local t = v:mint("ivy@example.org", now);
				assert.same({ nil, "internal-error" }, { v:verify_user(t, "ivy", lower, now, lookup) }, i);
				assert.same({ "failure", "internal-error" }, { v:exchange("PLAIN"):step("\0ivy\0" .. t, lower, now, nil, lookup) }, i);
				assert.are.equal("ivy", (v:verify_user(t, "ivy", lower, now)), i);
			end
		end);

		it("raises on misuse", function()
			local v = sverifier();
			local function load() return nil; end
			assert.has_error(function() v:signout(5, nil, load, lower); end);
			assert.has_error(function() v:signout(plain.line, nil, nil, lower); end);
			assert.has_error(function() v:signout(plain.line, nil, load); end);
			assert.has_error(function() v:signout(plain.line, "now", load, lower); end);
			assert.has_error(function() v:signout(plain.line, plain.now, function() error("read failed"); end, lower); end);
			assert.has_error(function() v:signed_out_at(5, nil); end);
			assert.has_error(function() v:verify_user(v:mint("a@example.org"), "a", lower, nil, 5); end);
			assert.has_error(function() v:exchange("PLAIN"):step("\0a\0x", lower, nil, nil, "f"); end);
			local hostless = assert(native.verifier({ token_secret = sdoc.secrets, otp_seed = sdoc.otp_seed }));
			assert.has_error(function() hostless:signout(plain.line, plain.now, load, lower); end);
		end);
	end);
end);
