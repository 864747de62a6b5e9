"""Sign-out from the web app (docs/signout.md), live: a signed POST to /auth_hmac/signout ends every
session of the user at once (bound c2s, BOSH and WebSocket, logged-in streams not yet bound,
stream-management sessions hibernating for resumption), refuses the user's tokens minted up to the
sign-out's OTP step (signed-out), across a restart, and lets the next step's tokens in. Refused
requests (403) change nothing. The token clock is pinned through the admin shell and moved a step
at a time. Valid requests come from `hmac-token signout` (the CLI a web app can call); forged and
otherwise wrong ones from signout_requests (stdlib HMAC, a second implementation, checked against
the core's vectors below)."""
import re
import threading
import time
import xml.etree.ElementTree as ET

import pytest

import rawxmpp
from harness import Prosody, prosody_modules_dir, prosody_version
from logins import NS_BIND2, NS_SM, TRANSPORTS, connect, inline_resume, mint, plain, sasl2_inline
from signout_requests import forged, line, nonce, post

STEP = 30  # otp_step, the harness's default
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SIGNED_OUT_TEXT = "Signed out by the web site"


class Clock:
    """The token clock of both hosts, pinned; moved forward only (the replay cache's rule)."""

    def __init__(self, server):
        self.server = server
        self.now = int(time.time())
        self.pin()

    def pin(self):
        self.server.pin_token_clock(self.now)

    def next_step(self):
        """The first second of the next OTP step, plus one."""
        self.now = (self.now // STEP + 1) * STEP + 1
        self.pin()


@pytest.fixture(scope="module")
def server():
    s = Prosody(extra_modules=("auth_events_probe", "admin_shell", "smacks", "signout_midway"),
                extra_global="token_signout = true")
    s.start()
    s.used_tokens = []
    s.clock = Clock(s)
    yield s
    s.stop()


_users = iter(range(10_000))


def fresh(prefix):
    """A user name no other test touches (sign-outs are per user and kept in storage)."""
    return "%s%d" % (prefix, next(_users))


def jid(server, user):
    return "%s@%s" % (user, server.host)


def sign_out(server, user, at=None):
    """One sign-out of `user` at the pinned clock (or `at`), its line made by `hmac-token signout`:
    (status, body, the line sent)."""
    request = server.signout(jid(server, user), now=server.clock.now if at is None else at)
    status, body = post(server, request)
    return status, body, request


def token(server, user):
    return mint(server, jid(server, user), now=server.clock.now)


def logged_in(server, transport, user):
    """A stream of `user` after a PLAIN login and the stream restart: logged in, not bound."""
    s = connect(server, transport)
    r = s.auth("PLAIN", plain(user, token(server, user)))
    assert r.status == "success", (r, server.tail())
    s.restart()
    return s


def bound(server, transport, user):
    s = logged_in(server, transport, user)
    assert s.bind(restart=False) == "%s/test" % jid(server, user)
    return s


def store_file(server, user):
    """The user's record in Prosody's internal storage, as bytes (None: no record)."""
    path = server.dir / "data" / server.host.replace(".", "%2e") / "auth_hmac_signout" / ("%s.dat" % user)
    return path.read_bytes() if path.exists() else None


def refusal_line(server, user, reason):
    return "Refused sign-out request for %s from 127.0.0.1: %s" % (jid(server, user), reason)


def race(server, user):
    """Marks `user`'s next login as one whose check began before the last sign-out was stored
    (tests/integration/plugins/mod_signout_midway.lua)."""
    r = server.shell(">require'core.modulemanager'.get_module('%s', 'signout_midway').racers['%s'] = true; return 'raced'"
                     % (server.host, user))
    assert r.returncode == 0 and "raced" in r.stdout, (r.stdout, r.stderr)


def wait_for_stream_error(stream, transport, seconds):
    """The next element the server sends on a bound stream, waited for at most `seconds`."""
    if transport == "c2s":
        stream.sock.settimeout(seconds)
    elif transport == "websocket":
        stream.ws.settimeout(seconds)
    return rawxmpp.interpret(stream.recv())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_session_of_each_transport_ends_within_a_second(server, transport):
    user, other = fresh("gone"), fresh("stays")
    s, b = bound(server, transport, user), bound(server, transport, other)
    poll = None
    try:
        if transport == "bosh":
            # BOSH delivers the stream error on a request the server holds: one is waiting, as a
            # client's always is
            mark = server.log_mark()
            poll = threading.Thread(target=lambda: s._post(s._body()), daemon=True)
            poll.start()
            server.wait_log(mark, "leaving request unanswered")
        mark = server.log_mark()
        started = time.monotonic()
        status, body, _ = sign_out(server, user)
        assert (status, body) == (200, "accepted"), (status, body, server.tail())
        if poll:
            poll.join(max(0.0, 1.0 - (time.monotonic() - started)))
            assert not poll.is_alive(), "the held BOSH request was not answered within a second"
        r = wait_for_stream_error(s, transport, max(0.01, 1.0 - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        assert (r.status, r.condition, r.text) == ("stream-error", "not-authorized", SIGNED_OUT_TEXT), (r, r.text)
        assert elapsed < 1.0, elapsed
        assert "Signed out %s at the request of 127.0.0.1: 1 sessions ended" % jid(server, user) in server.log_since(mark)
        assert b.ping(), "another user's session was ended"
    finally:
        s.close()
        b.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_logged_in_unbound_stream_is_ended_and_cannot_bind(server, transport):
    user, other = fresh("unbound"), fresh("unbound_other")
    s, b = logged_in(server, transport, user), logged_in(server, transport, other)
    try:
        mark = server.log_mark()
        status, body, _ = sign_out(server, user)
        assert (status, body) == (200, "accepted"), (status, body)
        assert "Signed out %s at the request of 127.0.0.1: 1 sessions ended" % jid(server, user) in server.log_since(mark)
        with pytest.raises(ConnectionError):
            s.bind(restart=False)
        assert b.bind(restart=False) == "%s/test" % jid(server, other)
    finally:
        s.close()
        b.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_whose_login_raced_the_sign_out_cannot_bind(server, transport):
    """A login whose check began before the sign-out was stored may have read the old record: its
    stream is refused at bind (not-allowed, one line, closed). The same login without the race binds."""
    user = fresh("racer")
    assert sign_out(server, user)[:2] == (200, "accepted")
    server.clock.next_step()
    race(server, user)
    s = logged_in(server, transport, user)
    try:
        mark = server.log_mark()
        s.send_raw("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='%s'><resource>r</resource></bind></iq>"
                   % rawxmpp.NS_BIND)
        el = s.recv()
        assert el is not None and el.get("id") == "bind1", el
        assert el.get("type") == "error" and el.find("{jabber:client}error/{%s}not-allowed" % NS_STANZAS) is not None, \
            ET.tostring(el)
        assert el.findtext("{jabber:client}error/{%s}text" % NS_STANZAS) == SIGNED_OUT_TEXT, ET.tostring(el)
        refused = ("Refused a resource bind for %s from 127.0.0.1: signed out by the web site since this stream "
                   "logged in; closing the stream" % jid(server, user))
        assert server.wait_log(mark, refused).count(refused) == 1, server.log_since(mark)
        assert not s.ping()
    finally:
        s.close()
    bound(server, transport, user).close()  # not racing: binds


def hibernating(server, user):
    """A bound c2s session of `user` with resumable stream management whose connection dropped;
    returns its resumption id."""
    s = bound(server, "c2s", user)
    s.send_raw("<enable xmlns='%s' resume='true'/>" % NS_SM)
    el = s.recv()
    assert el is not None and el.tag == "{%s}enabled" % NS_SM, el
    mark = server.log_mark()
    s.sock.close()  # no </stream:stream>: the session hibernates
    assert "Session going into hibernation" in server.wait_log(mark, "Session going into hibernation"), server.tail()
    return el.get("id")


def resume(stream, previd):
    stream.send_raw("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    return stream.recv()


def test_a_hibernating_session_is_ended_and_cannot_be_resumed(server):
    user, other = fresh("sleeper"), fresh("sleeper_other")
    previd, other_previd = hibernating(server, user), hibernating(server, other)
    mark = server.log_mark()
    assert sign_out(server, user)[:2] == (200, "accepted")
    assert "Signed out %s at the request of 127.0.0.1: 1 sessions ended" % jid(server, user) in server.log_since(mark)
    server.clock.next_step()
    s = logged_in(server, "c2s", user)
    try:
        el = resume(s, previd)
        assert el is not None and el.tag == "{%s}failed" % NS_SM, el if el is None else ET.tostring(el)
    finally:
        s.close()
    s = logged_in(server, "c2s", other)  # what the refusal is measured against
    try:
        el = resume(s, other_previd)
        assert el is not None and el.tag == "{%s}resumed" % NS_SM, el if el is None else ET.tostring(el)
    finally:
        s.close()


def test_a_stream_whose_login_raced_the_sign_out_cannot_resume(server):
    """A session that hibernated after the sign-out, and a stream whose login check began before it:
    the resumption is refused (failed, one line)."""
    user = fresh("racer_resume")
    assert sign_out(server, user)[:2] == (200, "accepted")
    server.clock.next_step()
    previd = hibernating(server, user)
    race(server, user)
    s = logged_in(server, "c2s", user)
    try:
        mark = server.log_mark()
        el = resume(s, previd)
        assert el is not None and el.tag == "{%s}failed" % NS_SM, el if el is None else ET.tostring(el)
        refused = "Refused a stream resumption for %s from 127.0.0.1: signed out by the web site" % jid(server, user)
        assert server.wait_log(mark, refused).count(refused) == 1, server.log_since(mark)
    finally:
        s.close()
    s = logged_in(server, "c2s", user)  # not racing: the same session resumes
    try:
        el = resume(s, previd)
        assert el is not None and el.tag == "{%s}resumed" % NS_SM, el if el is None else ET.tostring(el)
    finally:
        s.close()


@pytest.fixture(scope="module")
def sasl2_server():
    """The same with SASL2 and its inline stream-management resumption (mod_sasl2, mod_sasl2_bind2
    and mod_sasl2_sm from prosody-modules)."""
    modules = ("mod_sasl2", "mod_sasl2_bind2", "mod_sasl2_sm")
    s = Prosody(extra_modules=("auth_events_probe", "admin_shell", "smacks", "signout_midway", "sasl2", "sasl2_bind2",
                               "sasl2_sm"),
                extra_global="token_signout = true", extra_plugin_paths=tuple(prosody_modules_dir(m) for m in modules))
    s.start()
    s.used_tokens = []
    s.clock = Clock(s)
    yield s
    s.stop()


@pytest.mark.skipif(prosody_version() < (13,), reason="Prosody 0.12's mod_smacks has no do_resume: bookworm's "
                    "mod_sasl2_sm raises on every inline resumption there (attempt to call a nil value), so none happens")
@pytest.mark.parametrize("transport", ["c2s", "websocket"])
def test_a_sasl2_login_that_raced_the_sign_out_cannot_resume_inline(sasl2_server, transport):
    """mod_sasl2_sm resumes inside <authenticate/> (mod_smacks.do_resume, in the SASL2 success event),
    with none of the <resume/> stanza events: the same refusal there. The <success/> carries <failed/>
    instead of <resumed/> (one line, the stream closed) and the fallback Bind 2 request is refused
    too; the same session then resumes inline for a login that did not race."""
    server = sasl2_server
    user = fresh("racer_inline")
    assert sign_out(server, user)[:2] == (200, "accepted")
    server.clock.next_step()
    previd = hibernating(server, user)
    race(server, user)
    s = connect(server, transport)
    try:
        mark = server.log_mark()
        el = sasl2_inline(s, user, token(server, user), inline_resume(previd))
        assert el.tag == "{%s}success" % rawxmpp.NS_SASL2, ET.tostring(el)
        assert el.find("{%s}resumed" % NS_SM) is None, ET.tostring(el)
        assert el.find("{%s}failed/{%s}forbidden" % (NS_SM, NS_STANZAS)) is not None, ET.tostring(el)
        assert el.find("{%s}bound" % NS_BIND2) is None, ET.tostring(el)
        refused = ("Refused a stream resumption for %s from 127.0.0.1: signed out by the web site since this stream "
                   "logged in; closing the stream" % jid(server, user))
        assert server.wait_log(mark, refused).count(refused) == 1, server.log_since(mark)
        assert not s.ping()
    finally:
        s.close()
    s = connect(server, transport)  # not racing: the same session resumes inline
    try:
        el = sasl2_inline(s, user, token(server, user), inline_resume(previd))
        resumed = el.find("{%s}resumed" % NS_SM)
        assert resumed is not None and resumed.get("previd") == previd, ET.tostring(el)
    finally:
        s.close()


def restart(server):
    server.keep_dir = True
    server.stop()
    server.start()
    server.keep_dir = False
    server.clock.pin()


def test_tokens_minted_before_are_refused_as_signed_out_across_a_restart_and_the_next_steps_log_in(server):
    user = fresh("tokens")
    before = [token(server, user) for _ in range(2)]
    assert sign_out(server, user)[:2] == (200, "accepted")
    mark = server.log_mark()
    for mech, t in zip(("PLAIN", "X-TOKEN"), before):
        s = connect(server, "c2s")
        try:
            r = s.auth(mech, plain(user, t))
        finally:
            s.close()
        assert (r.status, r.condition) == ("failure", "not-authorized"), (mech, r)
    failed = "token login for %s from 127.0.0.1: signed-out" % jid(server, user)
    assert server.wait_log(mark, failed).count(failed) == 2, server.log_since(mark)
    stored = store_file(server, user)
    assert stored is not None
    restart(server)
    assert store_file(server, user) == stored
    mark = server.log_mark()
    s = connect(server, "c2s")
    try:
        r = s.auth("PLAIN", plain(user, token(server, user)))  # the same step, after the restart
    finally:
        s.close()
    assert (r.status, r.condition) == ("failure", "not-authorized"), r
    assert failed in server.wait_log(mark, failed), server.log_since(mark)
    server.clock.next_step()
    bound(server, "c2s", user).close()


def test_refused_requests_answer_403_and_change_nothing(server):
    user = fresh("kept")
    status, _, accepted = sign_out(server, user)
    assert status == 200
    server.clock.next_step()  # a step after the sign-out: the user logs in again
    s = bound(server, "c2s", user)
    try:
        stored = store_file(server, user)
        assert stored is not None
        now = server.clock.now
        me = jid(server, user)
        login_token = token(server, user)
        cases = {
            "replayed": (accepted, "replayed"),  # the accepted request again, within 60 s
            "stale-past": (line(server.token_secret, me, now - 61), "stale"),
            "stale-future": (line(server.token_secret, me, now + 61), "stale"),
            "forged": (forged(line(server.token_secret, me, now)), "bad-signature"),
            "another-secret": (line(server.other_token_secret, me, now), "bad-signature"),
            "other-host": (line(server.other_token_secret, "%s@%s" % (user, server.other_host), now), "wrong-host"),
            "other-host-own-secret": (line(server.token_secret, "%s@%s" % (user, server.other_host), now), "wrong-host"),
            "login-token": (login_token, "malformed"),
            # a sign-out line MAC'd with the token secret itself, as a login token's MAC is made
            "token-key": (token_keyed_line(server, me, now), "bad-signature"),
            "upper-case-jid": (line(server.token_secret, "%s@%s" % (user.upper(), server.host), now), "malformed"),
            "too-long": ("v1 " + "1" * 5000, "malformed"),
            "empty": ("", "malformed"),
        }
        for name, (body, reason) in cases.items():
            mark = server.log_mark()
            status, text = post(server, body)
            assert (status, text) == (403, "refused"), (name, status, text)
            log = server.log_since(mark)
            if reason in ("malformed", "wrong-host"):  # the JID as the request names it, if any
                assert re.search(r"\tRefused sign-out request for \S+ from 127\.0\.0\.1: %s$" % reason, log, re.M), (name, log)
            else:
                assert refusal_line(server, user, reason) in log, (name, log)
            assert "Signed out" not in log, (name, log)
            assert store_file(server, user) == stored, name
            assert s.ping(), name
    finally:
        s.close()


def token_keyed_line(server, who, now):
    """A sign-out line whose MAC is made under token_secret itself (no derived key)."""
    import base64
    import hashlib
    import hmac
    import struct
    digits = nonce()
    message = b"prosody-auth-hmac signout v1\x00" + struct.pack(">Q", now) + digits.encode() \
        + struct.pack(">H", len(who)) + who.encode()
    mac = base64.b64encode(hmac.new(server.token_secret.encode(), message, hashlib.sha256).digest()).decode()
    return "v1 %d %s %s %s" % (now, digits, who, mac)


def test_a_flood_of_sign_outs_never_delays_one(server):
    """Sixteen sign-outs of a user within a minute (all the nonces a record remembers), then one
    more, as a web app signing a compromised account out would send after someone made it send the
    sixteen: accepted, stored, and the session that logged in since is ended."""
    user = fresh("busy")
    for _ in range(16):
        assert sign_out(server, user)[:2] == (200, "accepted")
    server.clock.next_step()
    s = bound(server, "c2s", user)
    try:
        stored = store_file(server, user)
        mark = server.log_mark()
        assert sign_out(server, user)[:2] == (200, "accepted")
        r = wait_for_stream_error(s, "c2s", 5)
        assert (r.status, r.condition, r.text) == ("stream-error", "not-authorized", SIGNED_OUT_TEXT), (r, r.text)
        assert "Signed out %s at the request of 127.0.0.1: 1 sessions ended" % jid(server, user) in server.log_since(mark)
        assert store_file(server, user) != stored
    finally:
        s.close()
    # the token minted in the step of the seventeenth is refused
    c = connect(server, "c2s")
    assert c.auth("PLAIN", plain(user, token(server, user))).condition == "not-authorized"
    c.close()


def test_the_client_address_behind_a_trusted_proxy_is_logged(server):
    """mod_http takes X-Forwarded-For from trusted_proxies (loopback by default): the refusal names the
    client, as a failed login does, for fail2ban."""
    user = fresh("proxied")
    mark = server.log_mark()
    status, _ = post(server, forged(line(server.token_secret, jid(server, user), server.clock.now)),
                     headers={"X-Forwarded-For": "198.51.100.7"})
    assert status == 403
    assert "Refused sign-out request for %s from 198.51.100.7: bad-signature" % jid(server, user) in server.log_since(mark)


def test_no_other_origin_may_read_an_answer(server):
    """No CORS headers: a page in a browser has no business calling the endpoint (Prosody enables
    CORS for every HTTP module by default)."""
    import urllib.request
    request = urllib.request.Request("http://127.0.0.1:%d/auth_hmac/signout" % server.http_port, method="POST",
                                     data=line(server.token_secret, jid(server, fresh("cors")), server.clock.now).encode(),
                                     headers={"Host": server.host, "Origin": "https://attacker.example"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], dict(response.headers)


def test_other_methods_are_not_allowed(server):
    for method in ("GET", "PUT", "DELETE"):
        status, _ = post(server, None if method in ("GET", "DELETE") else "x", method=method)
        assert status == 405, method


@pytest.mark.version_independent
def test_the_request_builder_reproduces_the_cores_vectors():
    """signout_requests (stdlib HMAC) makes the very lines of tests/vectors/signout.json: the tests'
    requests are the spec's, not an echo of the core."""
    import json
    from harness import REPO
    vectors = json.loads((REPO / "tests" / "vectors" / "signout.json").read_text())
    minted = [c for c in vectors["cases"] if "mint" in c]
    assert len(minted) >= 10
    for case in minted:
        m = case["mint"]
        assert line(m["secret"], m["jid"], m["time"], m["nonce"]) == case["line"].rstrip("\n"), case["name"]


def test_the_endpoint_is_absent_without_token_signout(prosody):
    """conftest's server does not set token_signout."""
    status, _ = post(prosody, line(prosody.token_secret, "ann@" + prosody.host, int(time.time())))
    assert status == 404
