"""The nonce/JID boundary and the identity rule against a live Prosody (docs/security.md, advisory
2026-12): a token minted for user 5 never logs in user 35 or 835 (nor 35's for 5), by any
mechanism over any transport; only the nodeprep'd JID verifies unless token_jid_as_sent is set; a
host with another token_nonce_digits takes exactly that length; and every minter we document (the
collective.converse algorithm, the README's Python snippet, the CLI) still logs in."""
import base64
import os
import re
import secrets
import subprocess
import sys

import pytest

import sasl_hmac as sh  # clients/slixmpp
from harness import HMAC_TOKEN, REPO, Prosody, prosody_modules_dir
from logins import TRANSPORTS, connect, mint, plain

from converse_auth import create_token  # tests/interop, on the path by pytest.ini

MECHS = ["PLAIN", "X-TOKEN", "SASL-HMAC"]


def attempt(stream, mech, user, public, mac):
    """One login as `user` presenting `public` and `mac`; for SASL-HMAC as a client holding the
    MAC (the secret half) would. Returns the final Result."""
    if mech == "SASL-HMAC":
        cfm = sh.client_first(b"", user.encode(), public.encode())
        r = stream.auth("SASL-HMAC", cfm)
        if r.status != "challenge":
            return r
        return stream.response(sh.client_proof(base64.b64decode(mac), cfm, r.data))
    return stream.auth(mech, plain(user, public + " " + mac))


def shifted(token, k):
    """Token for `user` -> (public part without its last k digits, the k digits)."""
    public, mac = token.split(" ")
    return public[:-k], public[-k:], mac


def refused_then_own_login(prosody, transport, mech, victim, public, mac, condition, reason):
    mark = prosody.log_mark()
    s = connect(prosody, transport)
    try:
        r = attempt(s, mech, victim, public, mac)
        assert (r.status, r.condition) == ("failure", condition), r
        line = "Failed %s token login for %s@%s from 127.0.0.1: %s" % (mech, victim, prosody.host, reason)
        log = prosody.wait_log(mark, line)
        assert log.count(line) == 1, log
        # the victim's own token still works on the same stream
        own = mint(prosody, "%s@%s" % (victim, prosody.host))
        p, m = own.split(" ")
        r = attempt(s, mech, victim, p, m)
        assert r.status == "success", r
        assert s.bind() == "%s@%s/test" % (victim, prosody.host)
    finally:
        s.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("k", [1, 2])
def test_nonce_digits_moved_into_the_localpart_log_in_nobody(prosody, transport, mech, k):
    """User 5's token, its last k nonce digits moved to the front of the name: 35 (k=1), 835 (k=2)."""
    token = mint(prosody, "5@" + prosody.host)
    public, moved, mac = shifted(token, k)
    victim = moved + "5"
    refused_then_own_login(prosody, transport, mech, victim, public, mac, "malformed-request", "malformed")


@pytest.mark.parametrize("mech", MECHS)
def test_localpart_digit_moved_into_the_nonce_logs_in_nobody(prosody, mech):
    """User 35's token with the name's first digit appended to the nonce, presented as user 5."""
    public, mac = mint(prosody, "35@" + prosody.host).split(" ")
    refused_then_own_login(prosody, "c2s", mech, "5", public + "3", mac, "malformed-request", "malformed")


@pytest.mark.parametrize("mech", MECHS)
def test_signature_over_the_name_as_sent_is_refused_by_default(prosody, mech):
    """A web app that signs "Alice@host" signs no account: Prosody's account is "alice"."""
    token = create_token("Alice@" + prosody.host, prosody.otp_seed, prosody.token_secret)
    prosody.used_tokens.append(token)
    public, mac = token.split(" ")
    mark = prosody.log_mark()
    s = connect(prosody, "c2s")
    try:
        r = attempt(s, mech, "Alice", public, mac)
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        line = "Failed %s token login for alice@%s from 127.0.0.1: bad-signature" % (mech, prosody.host)
        assert prosody.wait_log(mark, line).count(line) == 1
        # the nodeprep'd JID's token logs "Alice" in, as alice
        p, m = mint(prosody, "alice@" + prosody.host).split(" ")
        assert attempt(s, mech, "Alice", p, m).status == "success"
        assert s.bind() == "alice@%s/test" % prosody.host
    finally:
        s.close()


def readme_snippet():
    text = (REPO / "README.md").read_text()
    return re.search(r"```python\n(import base64.*?)```", text, re.S).group(1)


def readme_make_token():
    """The README's Python snippet, run as a web developer would paste it."""
    snippet = readme_snippet()
    scope = {}
    exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102 - our own README
    return scope["make_token"]


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("minter", ["collective.converse", "README", "CLI"])
def test_every_documented_minter_still_logs_in(prosody, mech, minter):
    jid = "mia@" + prosody.host
    if minter == "collective.converse":
        token = create_token(jid, prosody.otp_seed, prosody.token_secret)
    elif minter == "README":
        token = readme_make_token()(jid, prosody.otp_seed, prosody.token_secret)
    else:
        token = prosody.mint(jid)
    prosody.used_tokens.append(token)
    public, mac = token.split(" ")
    assert len(public) == 40
    s = connect(prosody, "websocket")
    try:
        assert attempt(s, mech, "mia", public, mac).status == "success"
        assert s.bind() == jid + "/test"
    finally:
        s.close()


@pytest.fixture(scope="module")
def lax():
    """token_jid_as_sent = true and token_nonce_digits = 20 on every host."""
    s = Prosody(extra_global="token_jid_as_sent = true\ntoken_nonce_digits = 20").start()
    s.used_tokens = []
    yield s
    s.stop()


def mint20(server, jid):
    env = dict(os.environ, TOKEN_SECRET=server.token_secret, OTP_SEED=server.otp_seed, TOKEN_NONCE_DIGITS="20")
    return subprocess.run([str(HMAC_TOKEN), "mint", "--jid", jid], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.mark.parametrize("mech", MECHS)
def test_jid_as_sent_and_another_nonce_length(lax, mech):
    host = lax.host
    s = connect(lax, "c2s")
    try:
        # 20 nonce digits: the CLI's and the server's; the 32-digit default is malformed here
        p, m = mint20(lax, "nia@" + host).split(" ")
        assert len(p) == 28
        assert attempt(s, mech, "nia", p, m).status == "success"
        s.close()
        s = connect(lax, "c2s")
        p, m = create_token("nia@" + host, lax.otp_seed, lax.token_secret).split(" ")
        r = attempt(s, mech, "nia", p, m)
        assert (r.status, r.condition) == ("failure", "malformed-request"), r
        # the name as the web app wrote it is accepted here, and the session user is nodeprep'd
        nonce = "".join(secrets.choice("0123456789") for _ in range(20))
        p, m = create_token("Nia@" + host, lax.otp_seed, lax.token_secret, nonce=nonce).split(" ")
        assert attempt(s, mech, "Nia", p, m).status == "success"
        assert s.bind() == "nia@%s/test" % host
        s.close()
        # the boundary holds with 20 digits too: user 5 -> 35
        s = connect(lax, "c2s")
        public, moved, mac = shifted(mint20(lax, "5@" + host), 1)
        r = attempt(s, mech, moved + "5", public, mac)
        assert (r.status, r.condition) == ("failure", "malformed-request"), r
    finally:
        s.close()


def test_cli_agrees_with_the_server_on_unprepped_jids(prosody):
    """hmac-token verify applies the server's rule: valid exactly when a client logging in as that
    JID is accepted."""
    env = dict(os.environ, TOKEN_SECRET=prosody.token_secret, OTP_SEED=prosody.otp_seed)
    for sent, signed in [("Olga", "Olga"), ("Olga", "olga"), ("ＯＬＧＡ", "olga"), ("ol\u00adga", "ol\u00adga")]:
        token = create_token("%s@%s" % (signed, prosody.host), prosody.otp_seed, prosody.token_secret)
        prosody.used_tokens.append(token)
        cli = subprocess.run([str(HMAC_TOKEN), "verify", "--jid", "%s@%s" % (sent, prosody.host.upper()), "--token", token],
                             capture_output=True, text=True, env=env)
        s = connect(prosody, "c2s")
        try:
            r = s.auth("PLAIN", plain(sent, token))
        finally:
            s.close()
        assert (cli.returncode == 0) == (r.status == "success"), (sent, signed, cli.stdout, r)
        assert r.status == ("success" if signed == "olga" else "failure"), (sent, signed, r)


def test_fast_is_warned_about(prosody):
    """mod_sasl2_fast would trade one token login for a weeks-long FAST token: a warning at load."""
    s = Prosody(extra_modules=("sasl2", "sasl2_fast"),
                extra_plugin_paths=(prosody_modules_dir("mod_sasl2"), prosody_modules_dir("mod_sasl2_fast"))).start()
    try:
        # each host warns as it loads its modules, which goes on after the ports are open
        for host in (s.host, s.other_host):
            s.wait_log(0, "mod_sasl2_fast is loaded on %s," % host, timeout=15)
        log = s.log_since(0)
        for host in (s.host, s.other_host):
            assert log.count("mod_sasl2_fast is loaded on %s," % host) == 1, s.tail()
        assert "mod_sasl2_fast is loaded on" not in prosody.log_path.read_text(errors="replace")
    finally:
        s.stop()


DST_CHECK = r"""
import os, sys, time
os.environ["TZ"] = "Europe/Berlin"
time.tzset()
scope = {}
exec(compile(sys.stdin.read(), "README.md", "exec"), scope)
class FixedClock:
    def __init__(self, t): self.t = t
    def time(self): return self.t
for t in map(int, sys.argv[3:]):
    scope["time"] = FixedClock(t)  # the snippet's `time.time()` at t
    print(t, scope["make_token"]("dst@example.org", sys.argv[1], sys.argv[2]))
"""


def test_readme_snippet_is_right_across_a_dst_change():
    """In Europe/Berlin, 2026-10-25 02:00-03:00 local happens twice (00:00-01:00 and 01:00-02:00
    UTC). A counter from local time gets one of the two wrong; the snippet's, from Unix time, does
    not. Each token is checked by the CLI at the same instant."""
    import subprocess
    k = __import__("json").loads(subprocess.run([str(HMAC_TOKEN), "keygen", "--json"], capture_output=True, text=True).stdout)
    end_of_dst = 1792890000  # 2026-10-25 01:00:00 UTC: clocks go from 03:00 CEST back to 02:00 CET
    instants = [end_of_dst - 1800, end_of_dst - 1, end_of_dst, end_of_dst + 1800, end_of_dst + 3599]
    out = subprocess.run([sys.executable, "-c", DST_CHECK, k["otp_seed"], k["token_secret"], *map(str, instants)],
                         input=readme_snippet(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")[:len(instants)]
    env = dict(os.environ, TOKEN_SECRET=k["token_secret"], OTP_SEED=k["otp_seed"])
    for line in lines:
        t, token = line.split(" ", 1)
        r = subprocess.run([str(HMAC_TOKEN), "verify", "--jid", "dst@example.org", "--skew", "0", "--now", t],
                           input=token + "\n", capture_output=True, text=True, env=env)
        assert r.returncode == 0, (t, r.stdout, r.stderr)
