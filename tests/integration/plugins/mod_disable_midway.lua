-- Test-only: the race between a SASL2 login and its inline bind, made deterministic. Accounts whose
-- name starts with "midway" are disabled at the provider (provider.disable, no user-disabled event)
-- after mod_sasl2 has logged the stream in (priority 1000) and before mod_sasl2_bind2 binds (100).
module:hook("sasl2/c2s/success", function (event)
	local session = event.session;
	if session.username and session.username:match("^midway") then
		module:log("info", "disabling %s before its inline bind", session.username);
		assert(prosody.hosts[module.host].users.disable(session.username));
	end
end, 500);
