-- mod_sasl_hmac: the SASL side of mod_auth_hmac. Each c2s session gets its own handler object
-- (no global util.sasl registration, so PLAIN on other hosts keeps working as configured there).
-- The exchange itself runs in the native library; this file decides which mechanisms a session
-- is offered, maps outcomes to SASL conditions and writes one log line per failed login.

local nodeprep = require "util.encodings".stringprep.nodeprep;

local all_mechanisms = { "PLAIN", "X-TOKEN", "SASL-HMAC" };
-- These carry the whole token (a bearer credential).
local bearer = { ["PLAIN"] = true, ["X-TOKEN"] = true };
local enabled = module:get_option_set("token_mechanisms", all_mechanisms);
for mech in enabled do
	local known = false;
	for _, m in ipairs(all_mechanisms) do known = known or m == mech; end
	if not known then
		error("mod_sasl_hmac: token_mechanisms: unknown mechanism " .. tostring(mech), 0);
	end
end

-- Prosody's rules for PLAIN on unencrypted connections (mod_saslauth) apply to every mechanism that
-- sends the whole token. SASL-HMAC never sends the token's secret half; like SCRAM it follows the
-- rules for its own name (insecure_sasl_mechanisms).
local allow_unencrypted_plain_auth = module:get_option_boolean("allow_unencrypted_plain_auth", false);
local insecure_mechanisms = module:get_option_set("insecure_sasl_mechanisms",
	allow_unencrypted_plain_auth and {} or { "PLAIN", "LOGIN" });

local conditions = {
	["malformed"] = "malformed-request";
	["bad-signature"] = "not-authorized";
	["replayed"] = "not-authorized";
	["wrong-host"] = "not-authorized";
	["invalid-authzid"] = "invalid-authzid";
	["expired"] = "credentials-expired";
	["cache-full"] = "temporary-auth-failure";
	["quota-exceeded"] = "temporary-auth-failure";
	["internal-error"] = "temporary-auth-failure";
};
local texts = {
	["not-authorized"] = "Unable to authorize you with the authentication credentials you've sent.";
	["credentials-expired"] = "The token has expired; fetch a new one.";
	["temporary-auth-failure"] = "Please try again later.";
};

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
		local now = os.time();
		if not last_full_warning or now - last_full_warning >= 60 then
			last_full_warning = now;
			module:log("warn", "Replay cache full: refusing token logins until used tokens expire "
				.. "(raise token_replay_cache_size if this is normal load)");
		end
	end
end

local handler = {};
handler.__index = handler;

function new_handler(verifier, session, on_success) -- luacheck: ignore 131
	return setmetatable({
		verifier = verifier;
		session = session;
		on_success = on_success;
		realm = module.host;
	}, handler);
end

function handler:clean_clone()
	return new_handler(self.verifier, self.session, self.on_success);
end

function handler:mechanisms()
	local offered = {};
	local secure = self.session and self.session.secure;
	for mech in enabled do
		if secure or not insecure_mechanisms:contains(bearer[mech] and "PLAIN" or mech) then
			offered[mech] = true;
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

function handler:process(message)
	local exchange = self.exchange;
	if not exchange then
		return "failure", "malformed-request";
	end
	local status, value, extra = exchange:step(message, nodeprep);
	if status == "challenge" then
		return "challenge", value;
	elseif status == "success" then
		self.username = value;
		count(self.selected, "success");
		if self.on_success then self.on_success(value); end
		return "success", extra;
	end
	local session = self.session or {};
	count(self.selected, value);
	module:log("info", "Failed %s token login for %s from %s: %s", self.selected,
		exchange:attempted_jid() or "(unknown)", session.ip or "(unknown address)", value);
	module:fire_event("token-authentication-failure", {
		session = session, mechanism = self.selected, reason = value, jid = exchange:attempted_jid() });
	local condition = conditions[value] or "not-authorized";
	return "failure", condition, texts[condition];
end

module:log("debug", "Token SASL mechanisms enabled: %s", tostring(enabled));
