-- Test-only: records Prosody's authentication events in the log, the way mod_log_auth and
-- fail2ban-style tooling consume them.
module:hook("authentication-failure", function(event)
	local session = event.session;
	module:log("info", "probe: authentication-failure condition=%s ip=%s", tostring(event.condition), tostring(session.ip));
end);
module:hook("authentication-success", function(event)
	local session = event.session;
	module:log("info", "probe: authentication-success user=%s", tostring(session.username));
end);
