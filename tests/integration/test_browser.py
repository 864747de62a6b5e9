"""converse.js 14 in Debian's headless Chromium (driven by playwright-core), logging in to the live
Prosody with tokens from the credentials_url of the tests' fake web app (fake_webapp.py), over
WebSocket and BOSH, with PLAIN and with SASL-HMAC, and straight to Prosody without a proxy (ws://
and http:// named as insecure, wss:// on Prosody's own HTTPS port). Screenshots of every outcome go to
test-artifacts/browser/. Reconnects,
refused tokens, credentials_url outages and prebind: pages/."""
import json
import os
import subprocess
import tomllib
import urllib.error
import urllib.request

import pytest

import rawxmpp
from browser import Browser
from fake_webapp import FakeWebApp
from harness import REPO, Prosody, free_port, make_cert, stays
from proxies import NAME, spki_sha256


ARTIFACTS = REPO / "test-artifacts" / "browser"


@pytest.fixture(scope="module")
def webapp(prosody):
    app = FakeWebApp(free_port(), prosody.host, prosody.bosh_url, prosody.ws_url, prosody.token_secret,
                 prosody.otp_seed).start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield app
    app.stop()


def browse(app, name, user, base=None, env=None, **params):
    """Logs in to the web app as `user`, opens the chat page with `params`, and waits for its outcome."""
    shot = ARTIFACTS / ("%s.png" % name)
    url = app.page_url(user, base, **params)
    out = subprocess.run(["node", str(REPO / "tests" / "web" / "converse-login.mjs"), url, str(shot)], cwd=REPO / "tests" / "web",
                         capture_output=True, text=True, timeout=90, env=dict(os.environ, **(env or {})))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert shot.is_file()
    return result


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
@pytest.mark.parametrize("mech", ["PLAIN", "SASL-HMAC"])
def test_good_token_shows_the_roster(prosody, webapp, transport, mech):
    user = "good%s%s" % (transport[:2], mech.replace("-", "").lower())
    mark = prosody.log_mark()
    r = browse(webapp, "%s-%s-good" % (transport, mech), transport=transport, mech=mech, user=user)
    assert r["outcome"] == "roster", r
    assert "%s@%s (me)" % (user, prosody.host) in r["detail"]
    line = "probe: authentication-success user=%s mechanism=%s" % (user, mech)
    assert line in prosody.wait_log(mark, line)


def test_the_page_runs_the_installed_package(prosody, webapp):
    """The chat page imports the plugins by name from prosody-auth-hmac-converse, installed from
    its `npm pack` tarball into the web root's node_modules/ (as clients/converse/README.md tells a
    deployer), logs in with SASL-HMAC and token-reconnect, and loads nothing from the checkout."""
    installed = webapp.static["/node_modules/"] / "prosody-auth-hmac-converse"
    assert installed.is_dir() and not installed.is_symlink() and REPO not in installed.resolve().parents
    meta = json.loads((installed / "package.json").read_text())
    assert meta["version"] == tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
    assert sorted(p.name for p in installed.iterdir()) == sorted(meta["files"] + ["package.json"])
    webapp.served.clear()
    user = "pkgpage"
    mark = prosody.log_mark()
    r = browse(webapp, "websocket-SASL-HMAC-package", transport="websocket", mech="SASL-HMAC", user=user)
    assert r["outcome"] == "roster", r
    package = "/node_modules/prosody-auth-hmac-converse/"
    for name in ("index.js", "sasl-hmac.js", "token-reconnect.js", "reconnect-rules.js"):
        assert package + name in webapp.served, webapp.served
    assert all(path.startswith(("/converse/", package)) for path in webapp.served), webapp.served
    line = "probe: authentication-success user=%s mechanism=SASL-HMAC" % user
    assert line in prosody.wait_log(mark, line)
    with pytest.raises(urllib.error.HTTPError) as e:  # the checkout's copies are not on the web
        urllib.request.urlopen(webapp.url + "clients/converse/sasl-hmac.js", timeout=10)
    assert e.value.code == 404


def test_browser_refuses_a_server_that_cannot_prove_the_secret(webapp):
    webapp.impostor_log.clear()
    r = browse(webapp, "bosh-SASL-HMAC-impostor", transport="bosh", mech="SASL-HMAC", user="ivan",
               bosh="/impostor-bosh")
    assert r["outcome"] == "login-error", r
    assert "response" in webapp.impostor_log, webapp.impostor_log  # the exchange ran to the end
    assert "restart" not in webapp.impostor_log, "converse restarted the stream for an unproven server"
    assert any("could not prove" in c for c in r["console"]), r


@pytest.mark.parametrize("impostor", ["plain", "iqauth"])
def test_pinned_sasl_hmac_sends_a_plain_or_legacy_only_server_nothing(webapp, impostor):
    """The recommended configuration (SASL-HMAC alone) against a server that offers only PLAIN and
    legacy login, or only legacy login (XEP-0078): converse shows the login error, and the token
    never leaves the page (Strophe's legacy-login fallback is refused by the mechanism)."""
    webapp.impostor_bodies.clear()
    user = "pia" + impostor
    r = browse(webapp, "bosh-SASL-HMAC-%s-impostor" % impostor, transport="bosh", mech="SASL-HMAC", user=user,
               bosh="/impostor-%s-bosh" % impostor)
    assert r["outcome"] == "login-error", r
    public, mac = webapp.issued[user]["password"].split(" ")
    sent = "\n".join(webapp.impostor_bodies)
    assert webapp.impostor_bodies, "converse did not reach the impostor"
    for secret in (mac, public):
        assert secret not in sent, sent
    assert "<auth" not in sent and "jabber:iq:auth" not in sent, sent
    assert any("Not falling back to legacy login" in c for c in r["console"]), r


@pytest.mark.parametrize("mech", ["SASL-HMAC", "PLAIN"])
def test_insecure_origin_fetches_no_token(prosody, webapp, mech):
    """The page loaded over plain HTTP from a name that is not localhost (Chromium maps chat.test to
    127.0.0.1): not a secure context, so credentials_url's answer, the whole token, would cross the
    network in clear. token-reconnect does not fetch it, says so on the console and shows its
    message; nothing reaches the server (without the plugin's check, SASL-HMAC could not run for
    want of WebCrypto, and a page pinned to PLAIN would send the token)."""
    user = "insecure" + mech.replace("-", "").lower()
    mark = prosody.log_mark()
    base = "http://chat.test:%d/" % webapp.port
    r = browse(webapp, "websocket-%s-insecure-origin" % mech, user, base=base,
               env={"HOST_RESOLVER_RULES": "MAP chat.test 127.0.0.1"}, transport="websocket", mech=mech)
    assert r["outcome"] == "login-error", r
    assert "this page was not loaded over HTTPS" in r["detail"], r
    assert any("token-reconnect: this page is not a secure context" in c for c in r["console"]), r
    stays(lambda: not [q for q in webapp.requests if q[0] == user], 1, "a credentials_url request")
    assert user not in webapp.issued
    log = prosody.log_since(mark)
    assert "Received[c2s_unauthed]: <auth" not in log and "jabber:iq:auth" not in log


def test_straight_to_prosody_without_a_proxy():
    """converse.js reaching Prosody directly, as Debian ships it (no consider_*_secure). Over ws://
    and http:// BOSH Prosody offers no sign-in, and token-reconnect says to use wss:// (https:// for
    BOSH) at once, with the one token it fetched unused, where Strophe alone shows "no-auth-mech"
    (Prosody 13 over WebSocket) or leaves the page loading. Over wss:// on Prosody's own https_ports
    (README "converse.js in five minutes": http_host and a certificate for it in the certificates
    directory) the page logs in. A server that offers mechanisms, none of which the page uses, is
    still converse's no-auth-mech, also over ws://. One Chromium for all four pages."""
    https_port = free_port()
    direct = Prosody(extra_global="\n".join([
        "consider_bosh_secure = false", "consider_websocket_secure = false",  # the harness's default
        "https_ports = { %d }" % https_port, 'https_interfaces = { "127.0.0.1" }']))
    certs = direct.dir / "certs"  # Prosody's `certificates` directory: /etc/prosody/certs on Debian
    certs.mkdir()
    make_cert(certs, [NAME])
    for ext in ("crt", "key"):
        (certs / ("host." + ext)).rename(certs / ("%s.%s" % (NAME, ext)))
    config = direct.config.read_text()
    vhost = 'VirtualHost "%s"\n' % direct.host
    direct.config.write_text(config.replace(vhost, vhost + '\thttp_host = "%s"\n' % NAME, 1))
    # Prosody's rule for an unencrypted session without c2s_require_encryption: SASL-HMAC is offered
    # (PLAIN is not), so a page that pins PLAIN finds mechanisms but none it uses
    lax = Prosody(extra_global="\n".join([
        "consider_bosh_secure = false", "consider_websocket_secure = false", "c2s_require_encryption = false"]))
    apps = []
    try:
        direct.start()
        lax.start()
        offered = rawxmpp.WebSocket(lax.ws_url, lax.host).mechanisms()
        assert "SASL-HMAC" in offered and "PLAIN" not in offered, offered
        plain_app = FakeWebApp(free_port(), direct.host, direct.bosh_url, direct.ws_url, direct.token_secret, direct.otp_seed)
        tls_app = FakeWebApp(free_port(), direct.host, "https://%s:%d/http-bind" % (NAME, https_port),
                         "wss://%s:%d/xmpp-websocket" % (NAME, https_port), direct.token_secret, direct.otp_seed)
        lax_app = FakeWebApp(free_port(), lax.host, lax.bosh_url, lax.ws_url, lax.token_secret, lax.otp_seed)
        apps = [a.start() for a in (plain_app, tls_app, lax_app)]
        pages = {
            "nows": (plain_app, "websocket", "SASL-HMAC"),
            "nobosh": (plain_app, "bosh", "SASL-HMAC"),
            "wss": (tls_app, "websocket", "SASL-HMAC"),
            "unusable": (lax_app, "websocket", "PLAIN"),
        }
        mark = direct.log_mark()
        env = {"HOST_RESOLVER_RULES": "MAP %s 127.0.0.1" % NAME, "TRUST_SPKI": spki_sha256(certs / ("%s.crt" % NAME))}
        with Browser(env=env) as b:
            for user, (app, transport, mech) in pages.items():
                b.open(user, app.page_url(user, transport=transport, mech=mech))
            results = {user: b.wait(user, "roster" if user == "wss" else "login-error") for user in pages}
            for user, r in results.items():
                b.screenshot(user, "direct-%s" % user)
        insecure = "the chat server offers no sign-in on an insecure connection. Use wss:// (or https:// for BOSH)"
        for user in ("nows", "nobosh"):
            r = results[user]
            assert r["reached"] and insecure in r["alert"], (user, r)
            assert any("is not encrypted" in c for c in r["console"]), (user, r)
            assert [q[3] for q in plain_app.requests if q[0] == user] == ["ok"], plain_app.requests  # stopped at once
        assert results["wss"]["reached"], results["wss"]
        line = "probe: authentication-success user=wss mechanism=SASL-HMAC"
        assert line in direct.wait_log(mark, line)
        r = results["unusable"]
        assert r["reached"] and ("no-auth-mech" in r["alert"] or "did not offer a supported authentication" in r["alert"]), r
        assert not any("is not encrypted" in c for c in r["console"]), r
    finally:
        for a in apps:
            a.stop()
        lax.stop()
        direct.stop()
