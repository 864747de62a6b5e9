"""converse.js 14 in Debian's headless Chromium (driven by playwright-core), logging in to the live
Prosody with tokens from the demo web app's credentials_url, over WebSocket and BOSH, with
PLAIN and with SASL-HMAC. Screenshots of every outcome go to test-artifacts/browser/. Refused
tokens, reconnects, prebind: test_browser_sessions.py."""
import json
import os
import subprocess
import sys

import pytest

from harness import REPO, free_port, stays

sys.path.insert(0, str(REPO / "examples" / "webapp"))
from app import WebApp  # noqa: E402

ARTIFACTS = REPO / "test-artifacts" / "browser"


@pytest.fixture(scope="module")
def webapp(prosody):
    app = WebApp(free_port(), prosody.host, prosody.bosh_url, prosody.ws_url, prosody.token_secret,
                 prosody.otp_seed).start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield app
    app.stop()


def browse(app, name, base=None, env=None, **params):
    shot = ARTIFACTS / ("%s.png" % name)
    url = (base or app.url) + "?" + "&".join("%s=%s" % kv for kv in params.items())
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


def test_insecure_origin_sends_the_server_nothing(prosody, webapp):
    """The page loaded over plain HTTP from a name that is not localhost (Chromium maps chat.test to
    127.0.0.1): no secure context, no WebCrypto, so SASL-HMAC cannot run. The mechanism says so and
    fails the login; nothing with the token reaches the genuine server (Strophe would otherwise
    send it in a legacy-login <password/> over ws://)."""
    user = "insecure"
    mark = prosody.log_mark()
    base = "http://chat.test:%d/" % webapp.port
    r = browse(webapp, "websocket-SASL-HMAC-insecure-origin", base=base, env={"HOST_RESOLVER_RULES": "MAP chat.test 127.0.0.1"},
               transport="websocket", mech="SASL-HMAC", user=user)
    assert r["outcome"] == "login-error", r
    assert any("not a secure context" in c for c in r["console"]), r
    public, mac = webapp.issued[user]["password"].split(" ")

    def quiet():
        log = prosody.log_since(mark)
        return "jabber:iq:auth" not in log and mac not in log and public not in log
    stays(quiet, 1, "the token went to the server")
    log = prosody.log_since(mark)
    assert "Received[c2s_unauthed]: <auth" not in log
