"""The shipped fail2ban filter, checked by fail2ban's own fail2ban-regex against the log of a live
Prosody after failed and successful logins."""
import re
import subprocess
import time

import pytest

from harness import REPO, Prosody
from logins import connect, flip_mac, mint, plain
from signout_requests import forged, line, post

FILTER = REPO / "examples" / "fail2ban" / "prosody-auth-hmac.conf"


def test_filter_matches_each_failed_login_and_nothing_else(prosody):
    mark = prosody.log_mark()
    s = connect(prosody, "c2s")
    try:
        assert s.auth("PLAIN", plain("otto", flip_mac(mint(prosody, "otto@" + prosody.host)))).status == "failure"
        assert s.auth("X-TOKEN", plain("otto", b"12345678 nope")).status == "failure"
        assert s.auth("PLAIN", plain("otto\nFAKE from 198.51.100.1: bad-signature", b"x")).status == "failure"
        # expired, with the clock diagnosis after the reason: a wrong clock
        assert s.auth("PLAIN", plain("otto", mint(prosody, "otto@" + prosody.host, now=time.time() - 3600))).status == "failure"
    finally:
        s.close()
    s = connect(prosody, "c2s")  # a stream takes token_max_failures (5) failures
    try:
        # and a token used late
        assert s.auth("PLAIN", plain("otto", mint(prosody, "otto@" + prosody.host, now=time.time() - 90))).status == "failure"
        # otp-mismatch is the server's configuration, not the client's doing: not counted
        assert s.auth("PLAIN", plain("otto", mint(prosody, "otto@" + prosody.host, seed="AAAAAAAAAAAAAAAA"))).status == "failure"
        assert s.auth("PLAIN", plain("otto", mint(prosody, "otto@" + prosody.host))).status == "success"
    finally:
        s.close()
    log = prosody.wait_log(mark, "Authenticated as otto")
    excerpt = prosody.dir / "excerpt.log"
    excerpt.write_text(log)
    out = subprocess.run(["fail2ban-regex", "--out", "ip", str(excerpt), str(FILTER)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    # one address per failed login, and it is the client's: the injected one is never picked up
    assert "expired (minted about 3600 s in the past: check the web app's clock and timezone)" in log, log
    assert re.search(r": expired \(minted about \d+ s ago, .*most likely used late", log), log
    assert ": otp-mismatch (no OTP step within 24 h matches" in log, log
    assert out.stdout.split() == ["127.0.0.1"] * 5, out.stdout


@pytest.fixture(scope="module")
def signout_server():
    s = Prosody(extra_global="token_signout = true")
    s.start()
    yield s
    s.stop()


def test_filter_matches_each_refused_sign_out_by_client_address(signout_server):
    """Refused sign-out requests count like failed logins, by the client's address (here also one
    forwarded by a trusted proxy, loopback) when only a forger makes them (malformed, wrong-host,
    bad-signature); accepted, stale and replayed ones, which the web app's own validly signed requests
    reach (a clock a minute off, a retried POST), do not."""
    server = signout_server
    now = int(time.time())
    me = "uma@" + server.host
    mark = server.log_mark()
    accepted = server.signout(me, now=now)
    assert post(server, accepted) == (200, "accepted")
    for body, headers in ((forged(line(server.token_secret, me, now)), {}),  # bad-signature
                          (line(server.token_secret, me, now - 3600), {}),  # stale
                          (accepted, {}),  # replayed
                          ("v1 nonsense\nFAKE from 198.51.100.1: stale", {}),  # malformed, a forged line inside
                          (line(server.other_token_secret, "uma@" + server.other_host, now), {}),  # wrong-host
                          (forged(line(server.token_secret, me, now)), {"X-Forwarded-For": "203.0.113.5"})):
        assert post(server, body, headers=headers) == (403, "refused")
    log = server.wait_log(mark, "from 203.0.113.5: bad-signature")
    excerpt = server.dir / "excerpt.log"
    excerpt.write_text(log)
    out = subprocess.run(["fail2ban-regex", "--out", "ip", str(excerpt), str(FILTER)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == ["127.0.0.1"] * 3 + ["203.0.113.5"], (out.stdout, log)
    for reason in ("stale", "replayed"):  # in the log, and not counted
        assert ": %s\n" % reason in log, (reason, log)
