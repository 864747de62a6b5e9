-- luacheck: globals racers
-- Test-only: a login racing a sign-out, made deterministic. The next login of a user in `racers`
-- (set through the admin shell) is marked as mod_auth_hmac marks a stream whose login check began
-- before the user's last sign-out was stored (it may have read the old record): no count.
racers = {};

module:hook("authentication-success", function (event)
	local session = event.session;
	if session and session.username and racers[session.username] then
		racers[session.username] = nil;
		module:log("info", "marking the login of %s as begun before its sign-out", session.username);
		session.auth_hmac_generation = nil;
	end
end, -10);
