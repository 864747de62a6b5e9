-- luacheck: globals racers
-- Test-only: a login racing a sign-out, made deterministic. The next login of a user in `racers`
-- (set through the admin shell) is marked as mod_auth_hmac marks a stream whose login check began
-- before the user's last sign-out was stored (it may have read the old record): no count.
racers = {};

local function mark(session)
	if session and session.username and racers[session.username] then
		racers[session.username] = nil;
		module:log("info", "marking the login of %s as begun before its sign-out", session.username);
		session.auth_hmac_generation = nil;
	end
end

module:hook("authentication-success", function (event)
	mark(event.session);
end, -10);

-- SASL2 (mod_sasl2) fires authentication-success only after the inline features: marked here, after
-- its login (priority 1000), before mod_auth_hmac's check of an inline resumption and the resumption
-- itself (mod_sasl2_sm, 110)
module:hook("sasl2/c2s/success", function (event)
	mark(event.session);
end, 500);
