"""Behind Debian's nginx and apache2, each run from its file in examples/ (tests/integration/proxies.py
fills in ports and certificate paths): converse.js logs in over HTTPS through it, Prosody offers
PLAIN only when the proxy says the client came over HTTPS, failed logins carry the client's address
(from 127.0.0.23) and never a forged one (also spelled X_Forwarded_For, over several Prosody
starts), an idle WebSocket outlives the proxy's default timeout, and a BOSH long-poll never meets
the proxy's timeout.

Time values are divided by SCALE (15): Prosody's bosh_max_wait 60 s -> 4 s, the proxy's BOSH read
timeout 90 s -> 6 s, its WebSocket timeout 900 s -> 60 s, nginx's and Apache's default 60 s -> 4 s.
The ratios are the shipped ones. The margin between Prosody's answer to an idle long-poll and the
proxy's timeout is then 2 s: at 30 (1 s) Apache answered a long-poll 502 on a machine at load 20."""
import re
import subprocess
import time

import pytest

from browser import Browser
from app import WebApp
from harness import REPO, Prosody, free_port, make_cert, prosody_version
from proxies import NAME, bosh_client, make_proxy, spki_sha256, websocket_client
from logins import flip_mac, plain


SCALE = 15
BOSH_MAX_WAIT = 60 // SCALE
DEFAULT_TIMEOUT_MS = 60_000 // SCALE  # nginx's proxy_read_timeout, Apache's Timeout
COMBOS = [("websocket", "PLAIN"), ("websocket", "SASL-HMAC"), ("bosh", "PLAIN"), ("bosh", "SASL-HMAC")]
FILTER = REPO / "examples" / "fail2ban" / "prosody-auth-hmac.conf"
CLIENT = "127.0.0.23"
GATEWAY_ERRORS = {"502", "504"}  # a proxy's answer when its upstream timed out (Apache, nginx)
# how Chromium and Strophe report such an answer in the console; a bare "504" would also match a
# console line's millisecond stamp or a stanza id
GATEWAY_ERROR_LOGGED = re.compile(r"status of (?:502|504)\b|\berror (?:502|504) happened")


def gateway_errors_logged(console):
    return [c for c in console if GATEWAY_ERROR_LOGGED.search(c)]


@pytest.fixture(scope="module", params=["nginx", "apache"])
def stack(request):
    """Prosody configured as the sample config's "Behind a reverse proxy" says (secure only through
    X-Forwarded-Proto from a trusted proxy), the web app, and the proxy in front of both."""
    server = Prosody(extra_global="\n".join([
        "consider_bosh_secure = false", "consider_websocket_secure = false",  # the harness's direct-HTTP default
        'trusted_proxies = { "127.0.0.1", "::1" }', "bosh_max_wait = %d" % BOSH_MAX_WAIT,
        "token_signout = true"]))
    make_cert(server.dir, [NAME, server.host, server.other_host])  # one certificate for the proxy and Prosody
    server.start()
    app_port = free_port()
    proxy = make_proxy(request.param, server.http_port, app_port, server.dir / "host.crt", server.dir / "host.key",
                       scale=SCALE).start()
    app = WebApp(app_port, server.host, proxy.origin + "/http-bind",
                 "wss://%s:%d/xmpp-websocket" % (NAME, proxy.https_port), server.token_secret, server.otp_seed, prebind_bosh_url=server.bosh_url).start()
    yield server, proxy, app
    app.stop()
    proxy.stop()
    server.stop()


def browser_env(server):
    return {"HOST_RESOLVER_RULES": "MAP %s 127.0.0.1" % NAME, "TRUST_SPKI": spki_sha256(server.dir / "host.crt")}


def page(app, proxy, user, transport, mech, **params):
    """The chat page through the proxy, after the web app's login as `user`."""
    q = dict(transport=transport, mech=mech, probe=1, delay=500, maxdelay=4000)
    q.update(params)
    return app.page_url(user, proxy.origin + "/", **q)


def variant(stack, **kw):
    server, proxy, app = stack
    return make_proxy(proxy.kind, server.http_port, app.port, server.dir / "host.crt", server.dir / "host.key",
                      scale=SCALE, **kw).start()


def test_converse_logs_in_through_the_https_proxy(stack):
    server, proxy, app = stack
    users = {c: "px" + c[0][:2] + c[1].replace("-", "").lower() for c in COMBOS}
    mark = server.log_mark()
    with Browser(env=browser_env(server)) as b:
        for (transport, mech), user in users.items():
            b.open(user, page(app, proxy, user, transport, mech))
        for (transport, mech), user in users.items():
            st = b.wait(user, "roster")
            assert st["reached"], (user, st)
            b.screenshot(user, "%s-%s-%s" % (proxy.kind, transport, mech))
    log = server.log_since(mark)
    for (transport, mech), user in users.items():
        assert "probe: authentication-success user=%s mechanism=%s\n" % (user, mech) in log
    assert "/http-bind" in proxy.access_log and "/xmpp-websocket" in proxy.access_log


@pytest.mark.parametrize("transport", ["bosh", "websocket"])
def test_plain_is_offered_only_when_the_proxy_says_https(stack, transport):
    """Prosody's rule: no PLAIN (no SASL at all, since c2s_require_encryption) on a session it does
    not consider encrypted. Through the HTTPS site it is; through the same site served over plain
    HTTP without X-Forwarded-Proto it is not."""
    server, proxy, app = stack
    client = bosh_client if transport == "bosh" else websocket_client
    assert "PLAIN" in client(proxy.https_port, True, server.host).mechanisms()
    plain_http = variant(stack, plain_http=True)
    try:
        try:
            offered = client(plain_http.https_port, False, server.host).mechanisms()
        except ConnectionError:  # WebSocket: Prosody closes the stream (encryption required)
            offered = []
        assert "PLAIN" not in offered, offered
    finally:
        plain_http.stop()


@pytest.mark.parametrize("transport", ["bosh", "websocket"])
@pytest.mark.parametrize("mech", ["PLAIN", "SASL-HMAC"])
def test_failed_logins_carry_the_clients_address_never_a_forged_one(stack, transport, mech):
    server, proxy, app = stack
    user = "fw" + transport[:2] + mech.replace("-", "").lower()
    jid = "%s@%s" % (user, server.host)
    forged = {"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https", "Forwarded": "for=10.9.9.9;proto=https"}
    mark = server.log_mark()
    if transport == "bosh":  # a client that sends its own X-Forwarded-For through the proxy
        s = bosh_client(proxy.https_port, True, server.host, source=CLIENT, headers=forged)
    else:
        s = websocket_client(proxy.https_port, True, server.host, source=CLIENT)
    token = flip_mac(server.mint(jid))
    if mech == "PLAIN":
        assert s.auth("PLAIN", plain(user, token)).condition == "not-authorized"
    else:
        public = token.split(" ")[0].encode()
        r = s.auth("SASL-HMAC", b"\0" + user.encode() + b"\0" + public)
        assert r.status == "challenge"
        assert s.response(b"\0" * 32).condition == "not-authorized"
    line = "Failed %s token login for %s from %s: bad-signature" % (mech, jid, CLIENT)
    log = server.wait_log(mark, line)
    assert log.count(line) == 1, log[-2000:]
    assert "10.9.9.9" not in log
    excerpt = server.dir / ("excerpt-%s-%s.log" % (transport, mech))
    excerpt.write_text(log)
    out = subprocess.run(["fail2ban-regex", "--out", "ip", str(excerpt), str(FILTER)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == [CLIENT], out.stdout + out.stderr


# A client's forwarding headers in every spelling Prosody reads as one: its HTTP server lower-cases
# header names and folds "-" into "_" (net/http/server.lua), so X_Forwarded_For and the proxy's
# X-Forwarded-For land on one key and the one pairs() visits last wins. Each forged address names its
# spelling; a forged X-Forwarded-Proto "http" would take PLAIN away. Forwarded is what Prosody 13
# reads instead with http_legacy_x_forwarded = false.
SPELLED = {"X_Forwarded_For": "10.9.9.1", "x-forwarded_FOR": "10.9.9.2", "X_FORWARDED-For": "10.9.9.3",
           "X_Forwarded_Proto": "http", "x-Forwarded_proto": "http", "X_forwarded-PROTO": "http",
           "FORWARDED": "for=10.9.9.4;proto=http"}
# Lua 5.4 seeds its string hashes per process, so pairs() order, and with it the winner, changes
# with each Prosody start, and within one with the size of the header table (the padding).
SPOOF_STARTS = 3
SPOOF_TRIALS = [("bosh", 0), ("bosh", 8), ("bosh", 24), ("websocket", 0)]


def spoof_trial(server, port, tls, source, transport, headers, user):
    """One connection sending `headers`, a failed PLAIN login on it: (whether Prosody treated it
    as encrypted, the address its failed-login line names, how the connection ended)."""
    jid = "%s@%s" % (user, server.host)
    mark = server.log_mark()
    try:
        if transport == "bosh":
            s = bosh_client(port, tls, server.host, source=source, headers=headers)
        else:
            s = websocket_client(port, tls, server.host, source=source, headers=headers)
    except ConnectionError:  # WebSocket: Prosody closes a stream it does not consider encrypted
        return False, None, "closed"
    if "PLAIN" not in s.mechanisms():
        return False, None, getattr(s, "terminated", None)
    condition = s.auth("PLAIN", plain(user, flip_mac(server.mint(jid)))).condition
    s.close()
    found = re.search(r"Failed PLAIN token login for %s from (\S+):" % re.escape(jid),
                      server.wait_log(mark, "Failed PLAIN token login for %s " % jid))
    return True, found and found.group(1), condition


def test_forwarding_headers_in_no_spelling_reach_prosody(stack):
    """Forwarding headers spelled with "_" for "-", in odd cases, through the proxy over several
    Prosody starts: every failed login names the client, every session stays encrypted. The control:
    the same headers sent straight to Prosody from the trusted proxy's address (as a proxy that
    passed them on would) let a forged one win in at least one trial, so these trials can fail."""
    server, proxy, app = stack
    as_a_proxy = {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"}
    through, control = [], []
    for start in range(SPOOF_STARTS):
        if start:
            server._halt()
            server.start()
        for n, (transport, padding) in enumerate(SPOOF_TRIALS):
            headers = dict(SPELLED, **{"X-Padding-%d" % i: "x" for i in range(padding)})
            user = "spoof%s%d%d" % (proxy.kind[0], start, n)
            trial = (start, transport, padding)
            through.append(trial + spoof_trial(server, proxy.https_port, True, CLIENT, transport, headers, user))
            control.append(trial + spoof_trial(server, server.http_port, False, "127.0.0.1", transport,
                                               dict(headers, **as_a_proxy), user + "c"))
    table = "\n(start, transport, padding, encrypted, logged address, outcome)\n" + "\n".join(map(str, through))
    assert all(secure and address == CLIENT for _, _, _, secure, address, _ in through), table
    forged = {v for v in SPELLED.values() if v.startswith("10.")}
    assert any(not secure or address in forged for _, _, _, secure, address, _ in control), \
        "no forged header won straight to Prosody either: the trials show nothing\n%s" % "\n".join(map(str, control))


def test_a_clients_forwarded_header_in_any_case_never_reaches_prosody_13(stack):
    """Prosody 13 with http_legacy_x_forwarded = false reads RFC 7239's Forwarded instead (it has no
    "-", so only its case varies). The shipped files send none, so Prosody then logs the proxy's
    own address; a client's Forwarded, in two cases, through the proxy must not change that. (13.0.1
    never takes such a session as encrypted, whatever proto says: consider_*_secure stand in for it
    here so that PLAIN, and with it a failed-login line, is there.) The control: the same headers
    straight to Prosody from the proxy's address are believed."""
    if prosody_version() < (13,):
        pytest.skip("Prosody %s does not read Forwarded" % ".".join(map(str, prosody_version())))
    server, proxy, app = stack
    forged = {"FORWARDED": "for=10.9.9.4;proto=https", "forwarded": "for=10.9.9.4;proto=https"}
    config = server.config.read_text()
    reads_forwarded = config
    for old, new in (("consider_bosh_secure = false", "consider_bosh_secure = true"),
                     ("consider_websocket_secure = false", "consider_websocket_secure = true"),
                     ("bosh_max_wait", "http_legacy_x_forwarded = false\nbosh_max_wait")):
        assert reads_forwarded.count(old) == 1, old
        reads_forwarded = reads_forwarded.replace(old, new)
    server.config.write_text(reads_forwarded)
    try:
        server._halt()
        server.start()
        through = [spoof_trial(server, proxy.https_port, True, CLIENT, transport, forged,
                               "fwd%s%s" % (proxy.kind[0], transport[0])) for transport in ("bosh", "websocket")]
        control = spoof_trial(server, server.http_port, False, "127.0.0.1", "bosh", forged, "fwdc" + proxy.kind[0])
    finally:
        server.config.write_text(config)
        server._halt()
        server.start()
    assert all(address == "127.0.0.1" for _, address, _ in through), through
    assert control[1] == "10.9.9.4", "Prosody did not read Forwarded: the test shows nothing %r" % (control,)


def test_a_forged_header_from_a_client_that_is_not_a_proxy_is_not_believed(stack):
    """Straight to Prosody's HTTP port from 127.0.0.23 (not in trusted_proxies): X-Forwarded-For and
    X-Forwarded-Proto are ignored, so the session is neither "from 10.9.9.9" nor encrypted."""
    server, proxy, app = stack
    s = bosh_client(server.http_port, False, server.host, source=CLIENT,
                    headers={"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https"})
    assert "PLAIN" not in s.mechanisms()
    user = "forger"
    mark = server.log_mark()
    trusted = bosh_client(proxy.https_port, True, server.host, source=CLIENT)
    trusted.auth("PLAIN", plain(user, flip_mac(server.mint("%s@%s" % (user, server.host)))))
    log = server.wait_log(mark, "Failed PLAIN token login")
    assert "from %s: bad-signature" % CLIENT in log and "10.9.9.9" not in log


def login_ws(port, server, user, tls=True):
    ws = websocket_client(port, tls, server.host)
    assert ws.auth("PLAIN", plain(user, server.mint("%s@%s" % (user, server.host)))).status == "success"
    ws.restart()
    ws.bind(restart=False)
    return ws


SIGNOUT_DENY = {
    "nginx": "\tlocation ^~ /auth_hmac/ {\n\t\treturn 404;\n\t}\n",
    "apache": '\t<Location "/auth_hmac/">\n\t\tRequire all denied\n\t</Location>\n',
}


def wholesale_proxy(stack, deny=True):
    """The shipped site with its web-app location forwarding to Prosody's HTTP server instead (an
    admin proxying Prosody wholesale), with or without the site's refusal of /auth_hmac/."""
    server, proxy, app = stack
    p = make_proxy(proxy.kind, server.http_port, app.port, server.dir / "host.crt", server.dir / "host.key", scale=SCALE)
    site = (p.dir / "site.conf").read_text()
    assert site.count(SIGNOUT_DENY[proxy.kind]) == 1, site
    if not deny:
        site = site.replace(SIGNOUT_DENY[proxy.kind], "")
    site = site.replace("127.0.0.1:%d" % app.port, "127.0.0.1:%d" % server.http_port)
    (p.dir / "site.conf").write_text(site)
    return p.start()


def post_through(p, body, host):
    import http.client
    from proxies import tls_context
    conn = http.client.HTTPSConnection("127.0.0.1", p.https_port, timeout=15, source_address=(CLIENT, 0),
                                       context=tls_context())
    try:
        conn.request("POST", "/auth_hmac/signout", body=body.encode(), headers={"Host": host, "Content-Type": "text/plain"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_the_signout_endpoint_is_refused_by_the_proxy_even_when_it_forwards_prosody_wholesale(stack):
    """Prosody's /auth_hmac/ is for the web app on loopback: the shipped sites refuse it, also in a
    copy whose catch-all location forwards Prosody's HTTP server; without the refusal the same
    request would sign the user out (what the refusal is measured against)."""
    import signout_requests
    server = stack[0]
    for deny, expected in ((True, None), (False, (200, "accepted"))):
        p = wholesale_proxy(stack, deny=deny)
        try:
            request = signout_requests.line(server.token_secret, "proxied@" + server.host, int(time.time()))
            mark = server.log_mark()
            status, body = post_through(p, request, server.host)
            if expected:
                assert (status, body) == expected, (status, body, server.tail())
                assert "Signed out proxied@%s at the request of %s" % (server.host, CLIENT) in server.log_since(mark)
            else:
                assert status in (403, 404) and "accepted" not in body and "refused" not in body, (status, body)
                assert "sign-out" not in server.log_since(mark).lower() and "Signed out" not in server.log_since(mark)
        finally:
            p.stop()


def test_an_idle_websocket_outlives_the_proxys_default_timeout(stack):
    """Idle for twice the proxy's default timeout (60 s, scaled): the shipped timeout keeps the
    WebSocket; the default (the negative control, a second proxy idling alongside) cuts it."""
    server, proxy, app = stack
    idle = 2 * DEFAULT_TIMEOUT_MS / 1000
    default = variant(stack, ws_timeout_ms=DEFAULT_TIMEOUT_MS)
    try:
        shipped_ws = login_ws(proxy.https_port, server, "idler")
        default_ws = login_ws(default.https_port, server, "idler2")
        time.sleep(idle)  # each has been idle at least this long
        assert shipped_ws.ping(), "the shipped configuration cut an idle WebSocket"
        assert not default_ws.ping(), "the default timeout did not cut the idle WebSocket: the test shows nothing"
    finally:
        default.stop()


def bosh_idle(server, app, runs, seconds):
    """converse over BOSH through each (proxy, user) of `runs`, all left idle together for at least
    `seconds`: for each, (state, HTTP statuses of /http-bind at that proxy, logins)."""
    mark = server.log_mark()
    with Browser(env=browser_env(server)) as b:
        for proxy, user in runs:
            b.open(user, page(app, proxy, user, "bosh", "SASL-HMAC", bosh=proxy.origin + "/http-bind"))
            st = b.wait(user, "roster")
            assert st["reached"], st
        time.sleep(seconds)
        states = []
        for proxy, user in runs:
            states.append(b.state(user))
            b.screenshot(user, "%s-bosh-idle-%s" % (proxy.kind, user))
    log = server.log_since(mark)
    return [(st, [line.split('" ')[1].split()[0] for line in proxy.access_log.splitlines() if "POST /http-bind" in line],
             log.count("authentication-success user=%s " % user)) for st, (proxy, user) in zip(states, runs)]


def test_bosh_long_polls_stay_below_the_proxy_timeout(stack):
    """converse asks for a 59 s wait; Prosody caps it at bosh_max_wait, below the proxy's read
    timeout: several idle long-polls, all 200, one login, no error in converse. With the proxy's
    timeout below the wait (the negative control) the proxy answers the long-polls with an error."""
    server, proxy, app = stack
    idle = 4 * BOSH_MAX_WAIT
    short = variant(stack, bosh_timeout_ms=BOSH_MAX_WAIT * 1000 // 2)
    try:
        (st, statuses, logins), control = bosh_idle(server, app, [(proxy, "poller"), (short, "poller2")], idle)
    finally:
        short.stop()
    assert st["jid"] and logins == 1, (st, logins)
    assert not set(statuses) & GATEWAY_ERRORS and statuses.count("200") >= 4, statuses
    assert not gateway_errors_logged(st["console"]), gateway_errors_logged(st["console"])
    assert not any("parse" in c.lower() for c in st["console"]), st["console"]
    st, statuses, logins = control
    # the failure the converse.js docs describe: the proxy answers the held long-poll with an
    # error page (nginx 504, Apache 502). Strophe 3 takes it as an HTTP error and retries the
    # request, so converse 14 keeps the session here; older Strophe parsed the page as XML.
    print("negative control /http-bind statuses:", statuses, "logins:", logins)
    assert sum(statuses.count(code) for code in GATEWAY_ERRORS) >= 2, statuses
    assert gateway_errors_logged(st["console"]), st["console"]  # the check above can see it


@pytest.mark.parametrize("kind", ["nginx", "apache"])
def test_listen_ports_that_contain_the_upstream_port_are_filled_in_right(kind, monkeypatch, tmp_path):
    """A port the harness picks may contain 5280 or 8080 (52801, 18080): the upstream ports in the
    shipped file are replaced before any picked port is written, so each is replaced exactly."""
    import proxies
    picked = iter([52801, 18080])
    monkeypatch.setattr(proxies, "free_port", lambda: next(picked))
    proxy = make_proxy(kind, 40001, 40002, tmp_path / "host.crt", tmp_path / "host.key")
    try:
        assert (proxy.https_port, proxy.http_port) == (52801, 18080)
        assert proxy.site.count("127.0.0.1:40001/") == {"nginx": 2, "apache": 3}[kind]
        assert proxy.site.count("127.0.0.1:40002") == {"nginx": 1, "apache": 2}[kind]
        assert "127.0.0.1:52801" in proxy.site and "127.0.0.1:18080" in proxy.site
    finally:
        import shutil
        shutil.rmtree(proxy.dir, ignore_errors=True)
