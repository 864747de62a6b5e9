-- Test-only: records Prosody's authentication events in the log, the way mod_log_auth and
-- fail2ban-style tooling consume them (and which mechanism was used, for the browser tests).
module:hook("authentication-failure", function(event)
	local session = event.session;
	module:log("info", "probe: authentication-failure condition=%s ip=%s", tostring(event.condition), tostring(session.ip));
end);
module:hook("authentication-success", function(event)
	local session = event.session;
	local handler = session.sasl_handler;
	module:log("info", "probe: authentication-success user=%s mechanism=%s", tostring(session.username),
		tostring(handler and handler.selected));
end);
-- With probe_refuse_attempts, every SASL attempt is refused the way mod_limit_auth refuses a
-- throttled one (Prosody 13's authentication-attempt event; 0.12 has none).
if module:get_option_boolean("probe_refuse_attempts", false) then
	module:hook("authentication-attempt", function(event)
		module:log("info", "probe: authentication-attempt refused mechanism=%s", tostring(event.mechanism));
		event.allowed = false;
		event.error_condition = "policy-violation";
	end);
end
