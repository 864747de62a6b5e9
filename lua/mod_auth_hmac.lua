-- mod_auth_hmac: sign in with short-lived HMAC tokens minted by a web application.
--
--   authentication = "hmac"
--   token_secret = "..."   -- or token_secret_file; a list rotates (the first mints, all verify)
--   otp_seed = "..."       -- base32; or otp_seed_file
--
-- The token is OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare JID)), as
-- collective.converse and mod_auth_token make it. All checking happens in the native library
-- (Rust); this file reads the configuration and plugs the library into Prosody.

-- Listed in the global modules_enabled, a module loads on every VirtualHost. Only a host whose
-- authentication is "hmac" uses this one; on the others it does nothing and needs no secrets.
local authentication = module:get_option_string("authentication", "internal_hashed");
if authentication ~= "hmac" then
	module:log("info", "Not active on %s: its authentication is %q, so token logins are not offered here "
		.. "(set authentication = \"hmac\" for this host to use them)", module.host, authentication);
	return;
end

local nodeprep = require "util.encodings".stringprep.nodeprep;
local st = require "util.stanza";

local name = "prosody_auth_hmac";
local lua_version = _VERSION:match("%d+%.%d+");

local pposix_ok, pposix = pcall(require, "util.pposix");
local resolve_relative_path = require "util.paths".resolve_relative_path;

-- Relative *_file paths and auth_hmac_library are read from the config file's directory, as
-- Prosody does for its own paths (module:get_option_path(..., "config")), not from wherever
-- Prosody was started.
local config_dir = prosody.paths.config or ".";
local function config_path(path)
	return resolve_relative_path(config_dir, path);
end

-- A secret file: the native library's rule (shared with the CLI) strips the trailing line end and
-- says who besides its owner and Prosody's group can read it: a leaked secret waiting to happen.
local native; -- loaded below, before any option is read
local function read_file(option, path, configured)
	local data, exposure = native.read_secret_file(path, pposix_ok and pposix.getgid and pposix.getgid() or nil, configured);
	if not data then
		error(("mod_auth_hmac: %s: %s"):format(option, exposure), 0);
	end
	if exposure then
		module:log("warn", "%s: %s %s", option, path, exposure);
	end
	return data;
end

-- A string or a list of strings from an option, and/or the contents of the files named by
-- option.."_file".
local function secret_list(option)
	local out = {};
	local value = module:get_option(option);
	if type(value) == "string" then
		out[1] = value;
	elseif type(value) == "table" then
		for i, v in ipairs(value) do
			if type(v) ~= "string" then
				error(("mod_auth_hmac: %s[%d] must be a string"):format(option, i), 0);
			end
			out[#out+1] = v;
		end
	elseif value ~= nil then
		error(("mod_auth_hmac: %s must be a string or a list of strings"):format(option), 0);
	end
	local files = module:get_option(option .. "_file");
	if type(files) == "string" then files = { files }; end
	if type(files) == "table" then
		for _, path in ipairs(files) do
			out[#out+1] = read_file(option .. "_file", config_path(path), path);
		end
	elseif files ~= nil then
		error(("mod_auth_hmac: %s_file must be a path or a list of paths"):format(option), 0);
	end
	return out;
end

-- The native library is loaded by explicit path: Prosody does not add a rocks tree's lib/lua/5.x
-- to package.cpath.
local function load_native()
	if package.loaded[name] then return package.loaded[name]; end
	local tried, candidates = {}, {};
	local configured = module:get_option_string("auth_hmac_library");
	if configured then
		candidates[1] = config_path(configured);
	else
		local dir = module.path and module.path:match("^(.*)/[^/]*$");
		if dir then
			candidates[#candidates+1] = dir .. "/" .. name .. ".so";
			local prefix = dir:match("^(.*)/share/lua/[%d%.]+$");
			if prefix then
				candidates[#candidates+1] = prefix .. "/lib/lua/" .. lua_version .. "/" .. name .. ".so";
			end
		end
		-- package.cpath, but only its absolute entries: "./?.so" would load whatever library sits in
		-- the directory Prosody was started from
		local absolute = {};
		for entry in package.cpath:gmatch("[^;]+") do
			if entry:sub(1, 1) == "/" then absolute[#absolute+1] = entry; end
		end
		local found = package.searchpath and package.searchpath(name, table.concat(absolute, ";")); -- COMPAT: Lua 5.1 has no searchpath
		if found then candidates[#candidates+1] = found; end
	end
	for _, path in ipairs(candidates) do
		local f = io.open(path, "rb");
		if f then
			f:close();
			local open, err = package.loadlib(path, "luaopen_" .. name);
			if open then
				local lib = open();
				package.loaded[name] = lib;
				module:log("debug", "Loaded native library %s (version %s)", path, lib.version);
				return lib;
			end
			tried[#tried+1] = path .. " (" .. tostring(err) .. ")";
		else
			tried[#tried+1] = path .. " (not found)";
		end
	end
	error("mod_auth_hmac: cannot load the native library " .. name .. ".so for Lua " .. lua_version
		.. "; tried: " .. (#tried > 0 and table.concat(tried, ", ") or "nothing")
		.. ". Build it (make build) or set auth_hmac_library to its path.", 0);
end

native = load_native();
local defaults = native.defaults;

local secrets = secret_list("token_secret");
local seeds = secret_list("otp_seed");
if #secrets == 0 then
	error("mod_auth_hmac: token_secret is not set (set token_secret or token_secret_file)", 0);
end
if #seeds ~= 1 then
	error(#seeds == 0 and "mod_auth_hmac: otp_seed is not set (set otp_seed or otp_seed_file)"
		or "mod_auth_hmac: set exactly one of otp_seed and otp_seed_file, with one seed", 0);
end

local verifier_config = { host = module.host; token_secret = secrets; otp_seed = seeds[1] };
-- the options the library takes as configured (src/options.rs): unset means its default; a wrong
-- type is reported by the library, naming the option
for option_name, option in pairs(native.options) do
	if option.passed then verifier_config[option_name] = module:get_option(option_name); end
end
local verifier, err = native.verifier(verifier_config);
verifier_config = nil; -- luacheck: ignore 311 (holds the secrets: let them be collected)
if not verifier then
	error("mod_auth_hmac: " .. err, 0);
end
for i, secret in ipairs(secrets) do
	if #secret < native.limits.secret_advised_bytes then -- under secret_min_bytes the library refused it above
		module:log("warn", "token_secret #%d is only %d bytes; use at least %d random bytes (hmac-token keygen)", i, #secret,
			native.limits.secret_advised_bytes);
	end
end
-- the secret strings are not needed past this point: let them be collected
secrets, seeds = nil, nil; -- luacheck: ignore 311

-- The replay cache lives in memory. A clean stop or a module reload keeps its live entries (16 bytes
-- of each used token's MAC, and its expiry) in Prosody's storage, authenticated, so tokens used just
-- before are still refused after the start. While the server runs, storage holds a marker instead:
-- a start that finds it (a crash), or a state that fails its check, refuses for at most
-- otp_step × (otp_skew + 1) seconds the tokens that could have been used before (docs/security.md).
local replay_store = module:open_store("auth_hmac_replay");
do
	local saved, read_err = replay_store:get("state");
	if read_err then saved = false; end -- unreadable: the library handles it as an unclean stop
	local start = verifier:restore_replay_state(saved);
	if start.outcome == "clean" then
		module:log(start.dropped > 0 and "info" or "debug", "Restored %d used tokens into the replay cache (%d expired)",
			start.taken, start.dropped);
	end
	if start.quarantine_ends then
		local why = start.refused and ("Replay cache: " .. start.refused .. ", so the start is handled as unclean")
			or start.outcome == "unclean" and "The last run did not stop cleanly (a crash, kill -9)"
			or "The quarantine after an earlier unclean stop still runs";
		module:log("warn", "%s: token logins are refused (unclean-restart) until %s UTC, %d s from now, for any token "
			.. "that could have been used before; tokens minted from then on log in", why,
			os.date("!%H:%M:%S", start.quarantine_ends), math.max(0, start.quarantine_ends - os.time()));
	end
end
-- Until storage holds the running marker, a crash would look like the clean stop before it: the
-- library refuses token logins (unclean-restart) until it is written; retried every few seconds.
local stopping = false;
local function mark_running()
	local ok, store_err = replay_store:set("state", verifier:running_state());
	verifier:running_state_stored(ok and true or false);
	return ok, store_err;
end
do
	local ok, store_err = mark_running();
	if not ok then
		local retry_every = 5;
		module:log("error", "Could not mark the replay cache as in use (%s): token logins are refused (unclean-restart) "
			.. "until it is, retried every %d s", tostring(store_err), retry_every);
		module:add_timer(retry_every, function ()
			if stopping then return; end -- a saved state is there now: keep it
			if not mark_running() then return retry_every; end
			module:log("info", "Marked the replay cache as in use: token logins are accepted again");
		end);
	end
end
local function keep_replay_state()
	stopping = true;
	local state = verifier:seal_replay_state();
	local ok, store_err = replay_store:set("state", state);
	if ok then
		module:log("debug", "Kept %d used tokens for the next start", #state.entries);
	else
		module:log("warn", "Could not keep the replay cache for the next start (%s): the next start handles it as "
			.. "an unclean stop", tostring(store_err));
	end
end
module:hook_global("server-stopping", keep_replay_state);
function module.unload()
	keep_replay_state();
end

-- Which accounts exist: "seen" (default) = users who have logged in with a token at least once;
-- "any" = every valid username (offline messages are kept for users who never logged in).
local user_exists_mode = module:get_option_string("token_user_exists", defaults.token_user_exists);
local user_exists_choices = native.limits.token_user_exists;
local valid_user_exists = false;
for _, choice in ipairs(user_exists_choices) do valid_user_exists = valid_user_exists or choice == user_exists_mode; end
if not valid_user_exists then
	error(("mod_auth_hmac: token_user_exists must be \"%s\""):format(table.concat(user_exists_choices, "\" or \"")), 0);
end
local seen_store = module:open_store("auth_hmac_seen");
local seen_cache = {};

local sasl_hmac = module:depends("sasl_hmac");
local printable = native.printable;

-- Sign-outs from the web app (docs/signout.md), when token_signout = true: the library checks the
-- request and seals the per-user record kept in the store auth_hmac_signout; every login reads it
-- back through the library (signed_out_at), which refuses tokens of steps up to the signed-out time.
local signout_enabled = module:get_option_boolean("token_signout", defaults.token_signout or false);
if signout_enabled and not verifier.signout then
	error("mod_auth_hmac: token_signout = true, but the native library " .. tostring(native.version)
		.. " has no sign-out support: install the matching build", 0);
end
local signout_store = module:open_store("auth_hmac_signout");
-- Sign-outs accepted since the module loaded, and, per user, the count at their last one. A stream
-- keeps the count as it was before its login's check began (auth_hmac_generation): one whose check
-- began before a sign-out of its user was stored (it may have read the old record) is refused at
-- bind and resumption. One number per signed-out user.
local signout_count = 0;
local signed_out_count = {};
local signouts = {};
function signouts.generation()
	return signout_count;
end
-- A stored record that fails its check counts as "signed out now" (docs/signout.md): the library
-- answers the time it is asked at, so the first such answer is kept here, by user, until a valid
-- record is read or a sign-out is accepted. Asked again a step later, the same bad record must not
-- refuse that step's tokens too (the spec: the next step's log in), and it is logged once. The time
-- kept is never before the record's own: the record was written before it was first read.
local invalid_since = {};
-- the library's notes on a stored record, for the log
local signout_notes = {
	["stored-record-invalid"] = "fails its check (changed outside Prosody, or sealed under a token_secret no longer "
		.. "configured)";
};

-- The user's signed-out time for the library's login check: nil when never signed out. A record
-- that cannot be read refuses the login (the library answers an error here with internal-error),
-- as the disabled mark does.
function signouts.signed_out(username)
	if not signout_enabled then return nil; end
	local now = sasl_hmac.token_clock();
	local record, read_err = signout_store:get(username);
	if read_err then
		module:log("error", "Cannot read the sign-out record of %s (%s): refusing its token logins until it can be read",
			printable(username .. "@" .. module.host), tostring(read_err));
		error("the sign-out record cannot be read", 0);
	end
	if record == nil then
		invalid_since[username] = nil;
		return nil;
	end
	local at, note = verifier:signed_out_at(username, record, now);
	if note == nil then
		invalid_since[username] = nil;
		return at;
	end
	if not invalid_since[username] then
		invalid_since[username] = at;
		module:log("error", "The stored sign-out record of %s %s: handled as signed out now, at %s, until a sign-out "
			.. "replaces it", printable(username .. "@" .. module.host), signout_notes[note] or tostring(note), tostring(at));
	end
	return invalid_since[username];
end

local provider = {};

-- test_password is how mod_legacyauth, mod_rest and other non-SASL logins check a password: there
-- the whole token is a bearer credential, as with PLAIN. So it is allowed while PLAIN or X-TOKEN is
-- among token_mechanisms, unless token_test_password says otherwise.
local allow_test_password = module:get_option_boolean("token_test_password", sasl_hmac.bearer_enabled());

-- test_password gets no session (usermanager.test_password(username, host, password), in 0.12 and
-- 13). For mod_legacyauth (XEP-0078) the session is the origin of the jabber:iq:auth set that
-- mod_legacyauth handles in the same event: kept here around that event's handlers only, and taken
-- only by the test_password of the same username and password. When mod_legacyauth refuses the
-- request itself (no resource, encryption required, already logged in) nothing is left behind:
-- no later sessionless call (mod_rest, ...) is taken for that stream, and the password is not kept.
-- Callers without a session have their failures counted under "(unknown address)".
local legacy_attempt = nil;
module:wrap_event("stanza/iq/jabber:iq:auth:query", function (handlers, event_name, event)
	local origin, stanza = event.origin, event.stanza;
	local query = stanza.tags[1];
	if stanza.attr.type == "set" and query then
		local username, password = query:get_child_text("username"), query:get_child_text("password");
		legacy_attempt = username and password and {
			session = origin, username = nodeprep(username), password = password } or nil;
	end
	-- a handler's error must not leave the slot set either (pcall yields on Lua 5.2+ and LuaJIT)
	local ok, ret = pcall(handlers, event_name, event);
	legacy_attempt = nil;
	if not ok then error(ret, 0); end
	return ret;
end);

local function legacy_session(username, password)
	local attempt = legacy_attempt;
	legacy_attempt = nil;
	if attempt and attempt.username == username and attempt.password == password then
		return attempt.session;
	end
	return nil;
end

function provider.test_password(username, password)
	local session = legacy_session(username, password);
	local shown = native.printable((type(username) == "string" and username or "?") .. "@" .. module.host);
	if type(username) ~= "string" or type(password) ~= "string" then
		sasl_hmac.failed("test_password", shown, session, "malformed");
		return nil, "malformed";
	end
	if sasl_hmac.stream_spent(session) then
		-- the stream used up token_max_failures and is being closed
		sasl_hmac.failed("test_password", shown, session, "too-many-failures");
		return nil, "too-many-failures";
	end
	if not allow_test_password then
		sasl_hmac.failed("test_password", shown, session, "bearer-disabled");
		return nil, "bearer-disabled";
	end
	-- the mechanisms' identity rule: the signature covers the nodeprep'd JID (and, only under
	-- token_jid_as_sent, the username as given), at their clock
	local generation = signouts.generation(); -- before the check, which may wait on storage
	local user, reason, detail = verifier:verify_user(password, username, nodeprep, sasl_hmac.token_clock(),
		signouts.signed_out);
	if not user then
		sasl_hmac.failed("test_password", shown, session, reason, detail);
		return nil, reason;
	end
	local enabled, why = provider.is_enabled(user);
	if not enabled then
		sasl_hmac.failed("test_password", shown, session, "account-disabled", why);
		return nil, "account-disabled";
	end
	if session then session.auth_hmac_generation = generation; end
	sasl_hmac.count("test_password", "success");
	provider.note_login(user);
	return true;
end

function provider.note_login(username)
	if seen_cache[username] then return; end
	seen_cache[username] = true;
	if not seen_store:get(username) then
		seen_store:set(username, { first_login = os.time() });
	end
end

-- Accounts are keyed by the nodeprep'd name, the one a token's login gives the session: Prosody's
-- callers (usermanager, its admin shell, other modules) may pass a name as typed ("Alice"), and a
-- disable stored under that spelling would be missed by the login's check. A name that nodeprep
-- refuses names no account.
local function account(username)
	local prepped = type(username) == "string" and nodeprep(username);
	return prepped ~= "" and prepped or nil;
end

function provider.user_exists(username)
	username = account(username);
	if not username then return nil, "invalid username"; end
	if user_exists_mode == "any" then
		return true;
	end
	if seen_cache[username] then return true; end
	if seen_store:get(username) then
		seen_cache[username] = true;
		return true;
	end
	return nil, "user has never logged in";
end

function provider.users()
	return seen_store:users();
end

local function not_supported(what)
	return function()
		return nil, what .. " is not supported by mod_auth_hmac: accounts live in the web application that mints tokens";
	end
end
provider.set_password = not_supported("Setting a password");
provider.create_user = not_supported("Creating a user");

function provider.delete_user(username)
	username = account(username);
	if not username then return nil, "invalid username"; end
	-- Deleting purges the user's stores, the disabled mark with them: a disabled account would
	-- come back with its next token. It must be enabled first.
	local enabled, why = provider.is_enabled(username);
	if not enabled then
		return nil, why or "the account is disabled: enable it first (deleting it would let its next token in)";
	end
	-- Forgets that the user has logged in; their next valid token works again.
	seen_cache[username] = nil;
	return seen_store:set(username, nil);
end

function provider.get_sasl_handler(session)
	return sasl_hmac.new_handler(verifier, session, provider.note_login, provider.is_enabled, signouts);
end

-- Prosody 13's account controls (prosodyctl shell user disable JID, mod_admin_shell): a disabled
-- account's tokens are refused (account-disabled) until it is enabled again; Prosody's mod_c2s
-- ends its sessions. Kept in Prosody's storage, so it survives restarts. A storage error refuses
-- that one account's logins, nobody else's.
local disabled_store = module:open_store("auth_hmac_disabled");

function provider.is_enabled(username)
	username = account(username);
	if not username then return nil, "invalid username"; end
	local disabled, store_err = disabled_store:get(username);
	if store_err then return nil, "cannot read the account's state: " .. tostring(store_err); end
	return disabled == nil;
end

function provider.disable(username, meta)
	username = account(username);
	if not username then return nil, "invalid username"; end
	return disabled_store:set(username, { since = os.time(), meta = meta });
end

function provider.enable(username)
	username = account(username);
	if not username then return nil, "invalid username"; end
	return disabled_store:set(username, nil);
end

function provider.get_verifier()
	return verifier;
end

-- Prosody 13's user-disabled handling (mod_c2s) ends bound sessions only, and the account is
-- checked at login: a stream that logged in before the account was disabled, but had not yet bound
-- a resource, could bind afterwards and work. So the account is checked again where a session
-- becomes usable (resource binding, also SASL2/Bind2's inline one; stream-management resumption,
-- also SASL2's inline one), and the logged-in, unbound streams of an account are closed when it is
-- disabled.
-- mod_c2s ends bound sessions with not-authorized; SASL's conditions are the native module's alone,
-- so these get the stream error this plugin closes streams with
local account_disabled = { condition = "policy-violation", text = "Account disabled" };

-- the stream error of sessions ended by a sign-out from the web app: the condition of the login
-- refusal signed-out (not-authorized, a stream error condition too), a text of its own
local signed_out_error = { condition = native.conditions["signed-out"], text = "Signed out by the web site" };

-- Whether the session logged in before the last accepted sign-out of its user: its login's check
-- began before that sign-out was stored (a stream racing it), or it has no count (logged in before
-- this module loaded, or by a way that does not keep one).
local function signed_out_since_login(session)
	local last = signed_out_count[session.username];
	return last ~= nil and last > (session.auth_hmac_generation or -1);
end

local function close_later(session, stream_error)
	-- after the refusal has gone out
	module:add_timer(0, function ()
		if not session.destroyed and session.close then session:close(stream_error); end
	end);
end

-- true when the session's account may still be used; else one log line, the stream closed soon
-- after; also the text of the refusal
local function usable(session, what)
	local enabled, why = provider.is_enabled(session.username);
	local stream_error = account_disabled;
	if enabled then
		if not signed_out_since_login(session) then return true; end
		why, stream_error = "signed out by the web site since this stream logged in", signed_out_error;
	end
	module:log("info", "Refused %s for %s from %s: %s; closing the stream", what,
		printable(session.username .. "@" .. module.host), session.ip or "(unknown address)",
		why or "the account is disabled");
	close_later(session, stream_error);
	return false, stream_error.text;
end

module:hook("pre-resource-bind", function (event)
	local ok, text = usable(event.session, "a resource bind");
	if ok then return; end
	event.error = { type = "cancel", condition = "not-allowed", text = text };
	return false;
end, 1000);

-- XEP-0198 <resume/> on a logged-in stream; mod_smacks (13's own, prosody-modules' on 0.12)
-- handles it at priority 0
local function check_resumption(event)
	local session, stanza = event.origin, event.stanza;
	if not session.username or session.resource then return; end -- mod_smacks refuses these itself
	if usable(session, "a stream resumption") then return; end
	session.send(st.stanza("failed", { xmlns = stanza.attr.xmlns })
		:tag("forbidden", { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" }));
	return true;
end
module:hook("stanza/urn:xmpp:sm:2:resume", check_resumption, 10);
module:hook("stanza/urn:xmpp:sm:3:resume", check_resumption, 10);

-- XEP-0198 <resume/> inside SASL2's <authenticate/> (prosody-modules' mod_sasl2_sm): resumed by
-- mod_smacks.do_resume in sasl2/c2s/success at priority 110, with none of the stanza events above.
-- The SASL success does not cover it: a login whose check began before a sign-out was stored passed
-- that check. Between mod_sasl2's login (1000, which makes event.success) and the resumption, a
-- refused request is dropped and answered inside the <success/>, as check_resumption answers.
module:hook("sasl2/c2s/success", function (event)
	local session = event.session;
	local request = session.sasl2_sm_request;
	if not request or request.name ~= "resume" or not session.username then return; end
	if usable(session, "a stream resumption") then return; end
	session.sasl2_sm_request = nil;
	event.success:add_child(st.stanza("failed", { xmlns = request.attr.xmlns })
		:tag("forbidden", { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" }));
end, 200);

-- Logged-in streams (any transport, classic SASL or SASL2), weakly held: the ones still unbound
-- when their account is disabled are closed here; mod_c2s (priority 200) closes the bound ones.
local logged_in = setmetatable({}, { __mode = "k" });
module:hook("authentication-success", function (event)
	if event.session then logged_in[event.session] = true; end
end);
module:hook_global("user-disabled", function (event)
	if event.host ~= module.host then return; end
	local username = account(event.username);
	if not username then return; end
	for session in pairs(logged_in) do
		if session.username == username and session.type == "c2s_unbound" and not session.destroyed then
			module:log("info", "Closing the unbound stream of %s from %s: the account was disabled",
				printable(username .. "@" .. module.host), session.ip or "(unknown address)");
			session:close(account_disabled);
		end
	end
	-- mod_c2s looks the bound sessions up by the name as given: a re-cased one finds none of them
	if username ~= event.username then
		local user = prosody.hosts[module.host] and prosody.hosts[module.host].sessions[username];
		for _, session in pairs(user and user.sessions or {}) do
			if not session.destroyed then
				module:log("info", "Closing the session of %s from %s: the account was disabled",
					printable(username .. "@" .. module.host), session.ip or "(unknown address)");
				session:close(account_disabled);
			end
		end
	end
end);

-- mod_sasl2_fast hands out a FAST token (valid for weeks, renewed on use) after any SASL2 login:
-- one token login would then outlive the token policy (single use, a minute or two). mod_sasl_hmac
-- keeps FAST off a token host; the admin is told why it does nothing.
local fast_warned = false;
local function warn_fast()
	if fast_warned then return; end
	fast_warned = true;
	module:log("warn", "mod_sasl2_fast is loaded on %s, whose authentication is \"hmac\": a FAST token would stay "
		.. "valid for weeks, far beyond a token's lifetime, so FAST is neither offered nor accepted there and no "
		.. "FAST token is issued; remove sasl2_fast from modules_enabled", module.host);
end
if module:get_option_inherited_set("modules_enabled", {}):contains("sasl2_fast") then warn_fast(); end
module:hook_global("module-loaded", function (event)
	if event.module == "sasl2_fast" and event.host == module.host then warn_fast(); end
end);

-- Every session of `username` on this host that a sign-out ends: bound ones and stream-management
-- sessions hibernating for resumption (the user's sessions table, on 0.12 and 13), and streams that
-- logged in but have not bound (mod_c2s's table, which holds WebSocket streams too, and mod_bosh's).
local function sessions_of(username)
	local found = {};
	local function take(session)
		if session.username == username and session.host == module.host and not session.destroyed then
			found[session] = true;
		end
	end
	local user = prosody.hosts[module.host] and prosody.hosts[module.host].sessions[username];
	for _, session in pairs(user and user.sessions or {}) do take(session); end
	for _, session in pairs(module:shared("/*/c2s/sessions")) do take(session); end
	for _, session in pairs(module:shared("/*/bosh/sessions")) do take(session); end
	for session in pairs(logged_in) do take(session); end
	return found;
end

-- The sign-out endpoint: POST /signout under the base path auth_hmac (http_paths moves it), for
-- the web app on loopback or through a reverse proxy that forwards only from the web app. Answers
-- 200 "accepted" or 403 "refused" and nothing more; the reason is in the log. Refusals get one
-- line each, like failed logins (fail2ban), up to token_max_failures_per_address a minute per
-- client address; more are counted and summed up once a minute. A refusal never stops a valid
-- request from the same address: a forger sharing the web app's address (a proxy) must not be
-- able to keep a user signed in.
if signout_enabled then
	-- a request line is under 2.2 KB (docs/signout.md); anything longer is refused unread
	local max_body = 4096;
	local per_minute = module:get_option_number("token_max_failures_per_address", defaults.token_max_failures_per_address);
	local refusals = native.address_budget(per_minute);
	local function write_summaries()
		for _, summary in ipairs(refusals:summaries(sasl_hmac.failure_clock())) do
			module:log("info", "%d more refused sign-out requests from %s in the minute before were not logged "
				.. "(over %d a minute from one address)", summary[2], summary[1], per_minute);
		end
	end
	module:add_timer(30, function ()
		write_summaries();
		return 30;
	end);

	local function answer(response, status, text)
		response.status_code = status;
		response.headers.content_type = "text/plain; charset=utf-8";
		response.headers.cache_control = "no-store";
		return text;
	end

	local function refuse(response, address, line, reason)
		write_summaries();
		if refusals:record(address, sasl_hmac.failure_clock()) then
			-- the JID as the request names it, for the log only (the library parsed nothing it accepted)
			local jid = type(line) == "string" and line:match("^v1 %S+ %S+ (%S+) ") or nil;
			module:log("info", "Refused sign-out request for %s from %s: %s", jid and printable(jid) or "(unknown)",
				address or "(unknown address)", reason);
		end
		sasl_hmac.count("signout", reason);
		return answer(response, 403, "refused");
	end

	local function handle_signout(event)
		local request, response = event.request, event.response;
		-- mod_http has replaced the peer's address with X-Forwarded-For's where the peer is one of
		-- trusted_proxies (0.12 and 13)
		local address = request.ip;
		local line = request.body;
		if type(line) ~= "string" or #line > max_body then
			return refuse(response, address, nil, "malformed");
		end
		local read_failed = false;
		local username, record, note = verifier:signout(line, sasl_hmac.token_clock(), function (user)
			local stored, read_err = signout_store:get(user);
			if read_err then
				read_failed = true;
				module:log("error", "Cannot read the sign-out record of %s (%s)", printable(user .. "@" .. module.host),
					tostring(read_err));
			end
			return stored;
		end, nodeprep);
		if not username then
			return refuse(response, address, line, record);
		end
		local jid = printable(username .. "@" .. module.host);
		if note then
			module:log("error", "The stored sign-out record of %s %s: replaced by this sign-out", jid,
				signout_notes[note] or tostring(note));
		end
		-- a record built without the stored one could move the stored time back: not written
		local stored, store_err = false, "the stored record could not be read";
		if not read_failed then
			stored, store_err = signout_store:set(username, record);
		end
		-- after the write: a login whose check began before it may have read the old record, and
		-- is refused at bind (signed_out_since_login)
		signout_count = signout_count + 1;
		signed_out_count[username] = signout_count;
		invalid_since[username] = nil;
		local ended = 0;
		for session in pairs(sessions_of(username)) do
			if not session.destroyed then
				ended = ended + 1;
				session:close(signed_out_error);
			end
		end
		sasl_hmac.count("signout", "success");
		if not stored then
			module:log("error", "Signed out %s from %s: %d sessions ended, but the sign-out could not be stored (%s): "
				.. "tokens minted before it are not refused; answered 500 so that the web app retries", jid,
				address or "(unknown address)", ended, tostring(store_err));
			return answer(response, 500, "error");
		end
		module:log("info", "Signed out %s at the request of %s: %d sessions ended", jid, address or "(unknown address)", ended);
		return answer(response, 200, "accepted");
	end

	local function wrong_method(event)
		event.response.headers.allow = "POST";
		return answer(event.response, 405, "method not allowed");
	end

	module:depends("http");
	module:provides("http", {
		-- the web app's server calls it, never a page in a browser: no other origin may read an answer
		-- (Prosody answers CORS for every HTTP module unless told not to)
		cors = { enabled = false };
		route = {
			["POST /signout"] = handle_signout;
			["GET /signout"] = wrong_method;
			["PUT /signout"] = wrong_method;
			["DELETE /signout"] = wrong_method;
			["PATCH /signout"] = wrong_method;
		};
	});
end

module:provides("auth", provider);
-- one line per host at info, the level Debian logs: what runs here (the version, from the library
-- actually loaded) and which token mechanisms it offers
module:log("info", "Ready on %s: prosody-auth-hmac %s, mechanisms %s", module.host, native.version,
	table.concat(sasl_hmac.enabled_mechanisms(), " "));
module:log("debug", "Token authentication ready: %s", tostring(verifier));
