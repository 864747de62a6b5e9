"""What a deployer reads when the web app's settings or timing are wrong, against a live Prosody:
a genuine token minted with another otp_seed is refused as otp-mismatch, and the client is told so
(not-authorized with a text naming otp_seed, no talk of clocks); a token used a little late is
logged as used late; a web app whose clock is an hour behind or minutes ahead still gets the clock
diagnosis. And the one info line per host that says the module is ready, with the version and the
mechanisms."""
import re
import subprocess
import time

import pytest

import sasl_hmac as sh  # clients/slixmpp
from harness import REPO, Prosody, reseal_replay_state
from logins import begin, connect, mint, plain, plain_login_status

OTHER_SEED = "AAAAAAAAAAAAAAAA"
FILTER = REPO / "examples" / "fail2ban" / "prosody-auth-hmac.conf"


def crate_version():
    return re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)


def attempt(prosody, mech, user, token, transport="c2s"):
    """One login with `token` (the whole token, or SASL-HMAC's public half and proof): the result
    and this login's log line."""
    mark = prosody.log_mark()
    s = connect(prosody, transport)
    try:
        if mech == "SASL-HMAC":
            cfm, secret_half, r = begin(s, user, token)
            assert r.status == "challenge", r
            r = s.response(sh.client_proof(secret_half, cfm, r.data))
        else:
            r = s.auth(mech, plain(user, token))
    finally:
        s.close()
    needle = "Failed %s token login for %s@%s from 127.0.0.1: " % (mech, user, prosody.host)
    lines = [l for l in prosody.wait_log(mark, needle).splitlines() if needle in l]
    assert len(lines) == 1, lines
    return r, lines[0].split(needle, 1)[1]


@pytest.mark.parametrize("mech,transport", [("PLAIN", "c2s"), ("SASL-HMAC", "websocket"), ("X-TOKEN", "bosh")])
def test_a_token_minted_with_another_otp_seed_is_told_apart_from_a_clock(prosody, mech, transport):
    user = "seed" + mech.replace("-", "").lower()
    r, logged = attempt(prosody, mech, user, mint(prosody, "%s@%s" % (user, prosody.host), seed=OTHER_SEED), transport)
    assert (r.status, r.condition) == ("failure", "not-authorized"), r
    assert "otp_seed" in (r.text or ""), r  # what token-reconnect.js keys on
    assert logged == ("otp-mismatch (no OTP step within 24 h matches: the web app's otp_seed (or otp_digits, "
                      "otp_step) probably differs)"), logged
    # the same token under a wrong token_secret is a forgery: nothing about the seed is said
    forged = mint(prosody, "%s@%s" % (user, prosody.host), seed=OTHER_SEED, secret="x" * 40)
    r, logged = attempt(prosody, mech, user, forged, transport)
    assert (r.status, r.condition, logged) == ("failure", "not-authorized", "bad-signature"), (r, logged)
    assert "otp_seed" not in (r.text or ""), r.text


def test_a_token_used_late_is_logged_as_late(prosody):
    # 3 steps back: a token is accepted up to 60 s after minting (otp_step 30, otp_skew 1)
    r, logged = attempt(prosody, "PLAIN", "latey", mint(prosody, "latey@" + prosody.host, now=time.time() - 90))
    assert (r.status, r.condition) == ("failure", "credentials-expired"), r
    assert re.fullmatch(r"expired \(minted about (90|120) s ago, and a token is accepted for at most 60 s after minting: "
                        r"most likely used late - a page kept open, a slow credentials fetch, an old token sent again; "
                        r"if every login fails so, check the web app's clock\)", logged), logged


@pytest.mark.parametrize("offset,wording", [(-3600, "in the past"), (-1800, "in the past"), (300, "in the future")])
def test_a_web_app_clock_far_off_keeps_the_clock_diagnosis(prosody, offset, wording):
    r, logged = attempt(prosody, "PLAIN", "clocky", mint(prosody, "clocky@" + prosody.host, now=time.time() + offset))
    assert (r.status, r.condition) == ("failure", "credentials-expired"), r
    assert re.fullmatch(r"expired \(minted about \d+ s %s: check the web app's clock and timezone\)" % wording, logged), logged
    assert "late" not in logged


def test_ready_once_per_host_with_the_version_and_mechanisms():
    server = Prosody().start()
    try:
        for host in (server.host, server.other_host):
            needle = "%s:auth_hmac\tdebug\tToken authentication ready" % host
            assert needle in server.wait_log(0, needle, timeout=15), server.tail()
        log = server.log_since(0)
        # an admin's fail2ban does not take it for a failed login
        out = subprocess.run(["fail2ban-regex", "--out", "ip", str(server.log_path), str(FILTER)],
                             capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    for host in (server.host, server.other_host):
        line = "%s:auth_hmac\tinfo\tReady on %s: prosody-auth-hmac %s, mechanisms PLAIN X-TOKEN SASL-HMAC SASL-HMAC-PLUS" % (
            host, host, crate_version())
        ready = [l for l in log.splitlines() if "Ready on %s:" % host in l]
        assert len(ready) == 1 and ready[0].endswith(" " + line), log
    assert out.returncode == 0 and out.stdout.split() == [], out.stdout + out.stderr


def test_a_server_clock_set_back_is_named_and_not_counted_by_fail2ban():
    """The server's clock went ahead (here: the replay cache kept over a stop says the latest
    login was five steps ahead, the furthest a restart takes back) and is correct again: a token
    minted now is refused as expired until the clock catches up, and the line says the *server's*
    clock moved (not the web app's). fail2ban does not count it: the client did nothing wrong."""
    server = Prosody(keep_dir=True).start()
    try:
        assert plain_login_status(server, "clockset") == "success"  # something for the replay cache to keep
        server.stop()
        host_dir = server.host.replace(".", "%2e")
        stored = list(server.dir.glob("data/%s/auth_hmac_replay/state.dat" % host_dir))
        assert len(stored) == 1, list(server.dir.glob("**/*.dat"))
        text = stored[0].read_text()
        # as a clean stop under a clock five steps ahead leaves it (the furthest a start takes back);
        # sealed as the plugin seals it: an unsealed edit would be refused and handled as a crash
        ahead = int(time.time()) // 30 + 5
        stored[0].write_text(reseal_replay_state(text, server.token_secret, server.host, high_water=ahead))
        server.start()
        r, logged = attempt(server, "PLAIN", "clockset", server.mint("clockset@" + server.host))
        assert (r.status, r.condition) == ("failure", "credentials-expired"), r
        assert re.fullmatch(r"expired \(the token is current, but this server's clock is about (120|150) s behind the "
                            r"latest time a token login saw - the server's clock went back: token logins are refused "
                            r"until it catches up; the web app's clock is not at fault\)", logged), logged
        excerpt = server.dir / "excerpt.log"
        excerpt.write_text(server.log_since(0))
        out = subprocess.run(["fail2ban-regex", "--out", "ip", str(excerpt), str(FILTER)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.split() == [], out.stdout + out.stderr
    finally:
        server.keep_dir = False
        server.stop()
