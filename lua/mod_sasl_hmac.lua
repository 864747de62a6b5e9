-- mod_sasl_hmac: the SASL side of mod_auth_hmac. Each c2s session gets its own handler object
-- (no global util.sasl registration, so PLAIN on other hosts keeps working as configured there).
-- The exchange itself runs in the native library; this file decides which mechanisms a session
-- is offered, maps outcomes to SASL conditions and writes one log line per failed login.

-- Only mod_auth_hmac uses this module, and only where authentication = "hmac" (see there): listed
-- in the global modules_enabled, it stays idle on the other hosts.
if module:get_option_string("authentication", "internal_hashed") ~= "hmac" then
	module:log("debug", "Not active on %s: its authentication is not \"hmac\"", module.host);
	return;
end

local nodeprep = require "util.encodings".stringprep.nodeprep;

-- The native library (loaded by mod_auth_hmac, which loads this module) is the one home of the
-- facts used here: the mechanisms, which carry the whole token, the SASL condition and text of each
-- refusal reason, and the option defaults.
local native = package.loaded.prosody_auth_hmac;
if not native then
	error("mod_sasl_hmac: serves mod_auth_hmac, which has not loaded on this host (see its error); "
		.. "enable the plugin with authentication = \"hmac\"", 0);
end
local defaults = native.defaults;

local known = {};
for _, m in ipairs(native.mechanisms) do known[m] = true; end
-- Mechanisms that carry the whole token (a bearer credential).
local bearer = native.bearer;
local enabled = module:get_option_set("token_mechanisms", defaults.token_mechanisms);
for mech in enabled do
	if not known[mech] then
		error("mod_sasl_hmac: token_mechanisms: unknown mechanism " .. tostring(mech), 0);
	end
end

-- The enabled mechanisms (token_mechanisms), in the native module's order, for the ready line.
function enabled_mechanisms() -- luacheck: ignore 131
	local list = {};
	for _, m in ipairs(native.mechanisms) do
		if enabled:contains(m) then list[#list+1] = m; end
	end
	return list;
end

-- Whether a mechanism that carries the whole token is enabled (test_password follows it).
function bearer_enabled() -- luacheck: ignore 131
	for mech in enabled do
		if bearer[mech] then return true; end
	end
	return false;
end

-- Prosody's rules for PLAIN on unencrypted connections (mod_saslauth) apply to every mechanism that
-- sends the whole token. SASL-HMAC never sends the token's secret half; like SCRAM it follows the
-- rules for its own name (insecure_sasl_mechanisms).
local allow_unencrypted_plain_auth = module:get_option_boolean("allow_unencrypted_plain_auth", false);
local insecure_mechanisms = module:get_option_set("insecure_sasl_mechanisms",
	allow_unencrypted_plain_auth and {} or { "PLAIN", "LOGIN" });

-- After this many failed token logins one stream is closed (policy-violation): a client cannot
-- flood the log from one connection or one BOSH request.
local max_failures = module:get_option_number("token_max_failures", defaults.token_max_failures);
if not (max_failures and max_failures >= native.limits.token_max_failures_min) then -- NaN fails too
	error(("mod_sasl_hmac: token_max_failures must be a number, at least %d"):format(native.limits.token_max_failures_min), 0);
end

-- texts by reason: most reasons send their condition's text, otp-mismatch its own
local conditions, texts = native.conditions, native.reason_texts;
local servers_trouble = native.servers_trouble;

-- Counters by mechanism and outcome ("success" or the refusal reason), through Prosody's metrics
-- API (0.12 and 13), exported by mod_http_openmetrics as
-- prosody_mod_sasl_hmac__logins_total{host=...,mechanism=...,outcome=...}.
local logins = module:metric("counter", "logins", "", "Token logins by mechanism and outcome",
	{ "mechanism", "outcome" });

-- One warning a minute at most while the replay cache is full (each refused login still gets its
-- own info line).
local last_full_warning = nil;
function count(mechanism, outcome) -- luacheck: ignore 131
	logins:with_labels(mechanism, outcome):add(1);
	if outcome == "cache-full" then
		local now = failure_clock();
		if not last_full_warning or now - last_full_warning >= 60 then
			last_full_warning = now;
			module:log("warn", "Replay cache full: refusing token logins until used tokens expire "
				.. "(raise token_replay_cache_size if this is normal load)");
		end
	end
end

local handler = {};
handler.__index = handler;

-- Prosody hands channel bindings to a handler that has add_cb_handler. bookworm's 2023 mod_sasl2
-- then calls conn:ssl_info(), which Prosody 0.12's connections lack, and the stream dies: where that
-- mod_sasl2 is loaded on 0.12 the handler goes without channel binding (no SASL-HMAC-PLUS).
local function can_take_bindings(session)
	local conn = session and session.conn;
	if conn and not conn.ssl_info then
		local host = prosody.hosts and prosody.hosts[module.host];
		return not (host and host.modules and host.modules.sasl2);
	end
	return true;
end

local function add_cb_handler(self, name, f)
	self.cb_handlers = self.cb_handlers or {};
	self.cb_handlers[name] = f;
	return self;
end

-- tls_server_end_point_hash = "auto" (Prosody 13): Prosody 13.0.1's mod_saslauth resolves "auto" by
-- assigning nil to its module-wide copy of the option (`tls_server_end_point_hash = nil;`), so it
-- hands tls-server-end-point to the first encrypted c2s stream after it loads and to no later one,
-- nor advertises it there (XEP-0440). Where the option is "auto" and mod_saslauth's channel-binding
-- step ran for a stream (its userdata names the connection for tls-server-end-point) without adding
-- that binding, the handler adds it itself, computed as mod_saslauth computes it. A Prosody that
-- adds it on every stream never gets here.
local end_point_auto = module:get_option_string("tls_server_end_point_hash") == "auto";
local end_point_noted = false;

-- The certificate file the stream's TLS uses, found as mod_saslauth finds it for "auto": the
-- STARTTLS context's (session.ssl_cfg, set by mod_tls), else the listener's or the SNI name's.
local function end_point_certfile(session, conn)
	local ssl_cfg = session.ssl_cfg;
	if not ssl_cfg then
		local server = conn:server();
		local tls_config = require "core.portmanager".get_tls_config_at(server:ip(), server:serverport());
		local autocert = require "core.certmanager".find_host_cert(conn:socket():getsniname());
		ssl_cfg = autocert or tls_config;
	end
	return ssl_cfg and ssl_cfg.certificate;
end

-- RFC 5929 §4.1: the hash of the server certificate (DER), with the hash of its signature algorithm,
-- SHA-256 for MD5 and SHA-1 (and, as in mod_saslauth, for an algorithm without a SHA-2 name). Never
-- from the LuaSec socket's own getlocalcertificate (LuaSec 1.3, trixie's): it wraps the context's
-- certificate without taking a reference, and when that object is collected the certificate is
-- freed under Prosody's TLS context (the next handshakes fail).
local function end_point_binding(conn, certfile)
	local cert = conn.getlocalcertificate and conn:getlocalcertificate();
	if not cert then
		local f = certfile and io.open(certfile);
		if not f then return nil; end
		local pem = f:read("*a");
		f:close();
		cert = require "ssl".loadcertificate(pem);
		if not cert then return nil; end
	end
	local hashes = require "util.hashes";
	local hash = hashes.sha256;
	if cert.getsignaturename then
		local algorithm = cert:getsignaturename():lower():match("sha%d+");
		if algorithm and algorithm ~= "sha1" and hashes[algorithm] then hash = hashes[algorithm]; end
	end
	local der = require "util.x509".pem2der(cert:pem()); -- one value: 13's pem2der also returns the type
	return hash(der);
end

local end_point_failure_noted = false;

-- The binding is computed here, once per stream, just after the TLS handshake: a binding that
-- cannot be computed (the certificate file gone or unreadable) is neither added nor advertised, so
-- a client never picks it only to be refused as malformed (which fail2ban counts), and a
-- certificate file replaced before Prosody reloads does not change the binding of a stream that
-- was set up with the old one.
local function add_missing_end_point(self)
	local userdata = self.userdata;
	local conn = userdata and userdata["tls-server-end-point-conn"];
	if not (end_point_auto and conn) or self.end_point_checked then return; end
	self.end_point_checked = true;
	if self.cb_handlers and self.cb_handlers["tls-server-end-point"] then return; end -- Prosody's own
	local session = self.session or {};
	local found, certfile = pcall(end_point_certfile, session, conn);
	certfile = found and certfile or nil;
	local computed, binding = pcall(end_point_binding, conn, certfile);
	if not (computed and type(binding) == "string" and binding ~= "") then
		local level = "debug";
		if certfile and not end_point_failure_noted then
			end_point_failure_noted, level = true, "warn";
		end
		module:log(level, "tls_server_end_point_hash = \"auto\", but the certificate of the stream from %s (%s) "
			.. "could not be read: no tls-server-end-point for token logins", session.ip or "(unknown address)",
			certfile or "unknown file");
		return;
	end
	add_cb_handler(self, "tls-server-end-point", function () return binding; end);
	self.end_point_added = true;
	if not end_point_noted then
		end_point_noted = true;
		module:log("info", "mod_saslauth offered tls-server-end-point (tls_server_end_point_hash = \"auto\") "
			.. "on its first stream only (a fault of Prosody 13.0.1); token logins get it from this module on every stream");
	end
end

-- Advertises the binding added above (XEP-0440), after mod_saslauth has built its features.
local function advertise_end_point(event)
	local origin, features = event.origin, event.features;
	local h = origin.sasl_handler;
	if origin.username or getmetatable(h) ~= handler or not h.end_point_added then return; end
	if not features:get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl") then return; end
	local st = require "util.stanza";
	local advertised = features:get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0");
	if not advertised then
		advertised = st.stanza("sasl-channel-binding", { xmlns = "urn:xmpp:sasl-cb:0" });
		features:add_direct_child(advertised);
	end
	advertised:add_direct_child(st.stanza("channel-binding", { type = "tls-server-end-point" }));
end
if end_point_auto then
	module:hook("stream-features", advertise_end_point, -1); -- mod_saslauth's runs at 0
end

-- `is_enabled(username)` (the provider's): false or nil, err refuses a verified token (account-disabled).
-- `signouts` (mod_auth_hmac's): `signed_out(username)`, the user's signed-out time or nil, which the
-- library compares with the token's step (signed-out); `generation()`, the count of sign-outs accepted
-- so far, kept on the session as it was before the login's check began (the bind check compares it).
function new_handler(verifier, session, on_success, is_enabled, signouts) -- luacheck: ignore 131
	if type(is_enabled) ~= "function" then
		error("mod_sasl_hmac: new_handler needs the provider's is_enabled", 2); -- never a handler that skips it
	end
	if type(signouts) ~= "table" or type(signouts.signed_out) ~= "function" or type(signouts.generation) ~= "function" then
		error("mod_sasl_hmac: new_handler needs the provider's signouts", 2); -- never a handler that skips them
	end
	return setmetatable({
		verifier = verifier;
		session = session;
		on_success = on_success;
		is_enabled = is_enabled;
		signouts = signouts;
		realm = module.host;
		-- Prosody (mod_saslauth, mod_sasl2) hands it the connection's channel bindings; SASL-HMAC-PLUS is
		-- offered only when there is at least one
		add_cb_handler = can_take_bindings(session) and add_cb_handler or nil;
	}, handler);
end

function handler:clean_clone()
	local clone = new_handler(self.verifier, self.session, self.on_success, self.is_enabled, self.signouts);
	clone.cb_handlers, clone.userdata = self.cb_handlers, self.userdata;
	clone.end_point_checked, clone.end_point_added = self.end_point_checked, self.end_point_added;
	return clone;
end

-- The binding data for `name` on this connection, or nil.
function handler:channel_binding(name)
	local f = self.cb_handlers and self.cb_handlers[name];
	if not f then return nil; end
	local ok, data = pcall(f, self);
	if ok and type(data) == "string" and data ~= "" then return data; end
	return nil;
end

function handler:mechanisms()
	add_missing_end_point(self); -- mod_saslauth asks for the mechanisms after handing its bindings
	local offered = {};
	local secure = self.session and self.session.secure;
	for mech in enabled do
		-- a bearer mechanism follows Prosody's rule for PLAIN, the others the rule for their own name
		if secure or not insecure_mechanisms:contains(bearer[mech] and "PLAIN" or mech) then
			if not native.channel_binding[mech] or (self.cb_handlers and next(self.cb_handlers)) then
				offered[mech] = true;
			end
		end
	end
	return offered;
end

function handler:select(mechanism)
	if self.selected or not self:mechanisms()[mechanism] then return nil; end
	self.exchange = self.verifier:exchange(mechanism);
	if not self.exchange then return nil; end
	self.selected = mechanism;
	return true;
end

-- A client-supplied name made safe for a log line (escaped, cut to 200 bytes) by the native module.
local printable = native.printable;

-- A client that opens a new stream after each few failures is bounded per address, across streams
-- (the native module decides: a budget of lines per address and minute, in a bounded table); what
-- it does not log is counted, and said once a minute per address. Failures without a session
-- (test_password from mod_rest, ...) count under "(unknown address)", a budget of their own.
local per_minute = module:get_option_number("token_max_failures_per_address", defaults.token_max_failures_per_address);
if not (per_minute and per_minute >= 1 and per_minute == math.floor(per_minute)) then -- NaN fails too
	error("mod_sasl_hmac: token_max_failures_per_address must be a whole number, at least 1", 0);
end
local budget = native.address_budget(per_minute);
-- The clock of failure accounting (the address budget, the cache-full warning); specs set it.
function failure_clock() return os.time(); end
-- The clock token logins are verified at (the mechanisms here, mod_auth_hmac's test_password); nil:
-- the library reads the system clock. Specs, and live tests through the admin shell, pin it.
function token_clock() return nil; end
local function write_summaries()
	for _, s in ipairs(budget:summaries(failure_clock())) do
		module:log("info", "%d more failed token logins from %s in the minute before were not logged "
			.. "(over %d a minute from one address)", s[2], s[1], per_minute);
	end
end
module:add_timer(30, function()
	write_summaries();
	return 30;
end);

-- Whether the stream has used up token_max_failures (it is being closed).
function stream_spent(session)
	return (session and session.token_failures or 0) >= max_failures;
end

-- One refused login: counted, one log line (while the stream is under max_failures and its address
-- under its budget), the token-authentication-failure event. `jid` is already log-safe (the native
-- module's printable form). Returns the SASL condition and text to send.
function failed(mechanism, jid, session, reason, detail) -- luacheck: ignore 131
	count(mechanism, reason);
	local condition, text = conditions[reason], texts[reason];
	if not condition then
		-- only a shim that names a reason the library does not know gets here: refuse, and say so
		module:log("error", "No SASL condition for refusal reason %q: this module and the native library disagree",
			tostring(reason));
		condition, text = conditions["internal-error"], texts["internal-error"];
	end
	local n = (session and session.token_failures or 0) + 1;
	if session then session.token_failures = n; end
	local address = session and session.ip or nil;
	local logged, over = false, false;
	if n <= max_failures then -- later ones are the closing stream's, never logged
		write_summaries();
		if servers_trouble[reason] then
			-- not the client's doing (a crash, a full cache): not charged to its address, which may be a
			-- busy NAT; each such refusal needs a token the web application signed
			logged = true;
		else
			logged, over = budget:record(address, failure_clock());
		end
	end
	if logged then
		module:log("info", "Failed %s token login for %s from %s: %s%s", mechanism,
			jid or "(unknown)", address or "(unknown address)", reason,
			detail and (" (" .. detail .. ")") or "");
	end
	if n <= max_failures then
		module:fire_event("token-authentication-failure", {
			session = session or {}, mechanism = mechanism, reason = reason, jid = jid });
	end
	if session and over and n < max_failures then
		n = max_failures; -- the address is over its budget: this stream ends here
		session.token_failures = n;
		if logged then
			module:log("info", "Closing the stream from %s: %d failed token logins from that address in a minute",
				address, per_minute);
		end
	elseif session and n == max_failures and logged then
		module:log("info", "Closing the stream from %s after %d failed token logins", address or "(unknown address)", n);
	end
	if session and n == max_failures and session.close then
		-- after the failure reply has gone out
		module:add_timer(0, function()
			session:close({ condition = "policy-violation", text = "Too many failed logins" });
		end);
	end
	return condition, text;
end

function handler:process(message)
	local exchange = self.exchange;
	local session = self.session or {};
	if not exchange then
		-- no mechanism selected: refused like any failed login, so it counts against the stream
		local condition, text = failed("(none)", nil, session, "malformed");
		return "failure", condition, text;
	end
	if session.username then
		-- a second SASL exchange on an authenticated session (mod_sasl2 offers one): never, it would
		-- split the session between two users
		local condition, text = failed(self.selected, printable(session.username .. "@" .. module.host), session,
			"already-authenticated");
		return "failure", condition, text;
	end
	if (session.token_failures or 0) >= max_failures then
		-- the stream is being closed; what it still sends is refused without a log line each
		local condition, text = failed(self.selected, exchange:attempted_jid(), session, "too-many-failures");
		return "failure", condition, text;
	end
	-- before the check, which may wait on storage while a sign-out is accepted
	local generation = self.signouts.generation();
	local status, value, extra = exchange:step(message, nodeprep, token_clock(), function (name)
		return self:channel_binding(name);
	end, self.signouts.signed_out);
	if status == "challenge" then
		return "challenge", value;
	elseif status == "success" then
		-- after verification, so that only the token's holder learns the account is disabled
		local account_enabled, why = self.is_enabled(value);
		if not account_enabled then
			local condition, text = failed(self.selected, printable(value .. "@" .. module.host), session,
				"account-disabled", why);
			return "failure", condition, text;
		end
		self.username = value;
		if self.session then self.session.auth_hmac_generation = generation; end
		count(self.selected, "success");
		if self.on_success then self.on_success(value); end
		return "success", extra;
	end
	local condition, text = failed(self.selected, exchange:attempted_jid(), session, value, exchange:clock_diagnosis());
	return "failure", condition, text;
end

-- mod_sasl2_fast (prosody-modules) would turn one token login into a FAST token valid for weeks and
-- renewed on use, far beyond a token's lifetime and single use: on a token host FAST is not offered,
-- and no FAST token is issued. A FAST <authenticate/> loses its <fast/> before mod_sasl2_fast
-- (priority 100) sees it, so mod_sasl2 runs it as an ordinary login: a FAST mechanism is one the
-- handler does not offer (a SASL2 failure, invalid-mechanism), a token one logs in as usual.
-- mod_auth_hmac warns where the module is loaded.
local xmlns_fast = "urn:xmpp:fast:0";
module:hook("advertise-sasl-features", function (event)
	event.features:remove_children("fast", xmlns_fast);
	event.origin.fast_sasl_handler = nil;
end, -10);
module:hook("stanza/urn:xmpp:sasl:2:authenticate", function (event)
	local session, auth = event.origin, event.stanza;
	if not auth:get_child("fast", xmlns_fast) then return; end
	module:log("debug", "Not using FAST for the login from %s: FAST is not offered for token logins",
		session.ip or "(unknown address)");
	auth:remove_children("fast", xmlns_fast);
end, 110);
module:hook("sasl2/c2s/success", function (event)
	event.session.fast_token_request = nil; -- read by mod_sasl2_fast at priority 75
end, 80);

module:log("debug", "Token SASL mechanisms enabled: %s", tostring(enabled));
