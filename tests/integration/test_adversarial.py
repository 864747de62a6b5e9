"""Hostile input against a live Prosody, over raw sockets (no friendly client smoothing anything
over). For each input: the SASL condition, one log line (when the input reaches the plugin), the
next valid login still works; at the end Prosody's memory is within a stated bound of the start."""
import base64
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

import rawxmpp
from harness import Prosody
from logins import assert_refused_for_size_over_bosh, begin, connect, refused_for_size_over_bosh

import sasl_hmac as sh  # clients/slixmpp, on the path via conftest
from converse_auth import create_token  # tests/interop, on the path by pytest.ini

MEMORY_BOUND_KIB = 24 * 1024  # Prosody's RSS may grow at most this much over the whole battery


@pytest.fixture(scope="module")
def server():
    p = Prosody(replay_cache_size=100000).start()
    # warm up (first TLS handshake, first login) before taking the baseline
    for _ in range(3):
        s = rawxmpp.C2S(p.c2s_port, p.host)
        s.auth("PLAIN", b"\0warm\0" + p.mint("warm@" + p.host).encode())
        s.close()
    p.rss_start = p.rss_kib()
    yield p
    # after every test of this module, whichever ran and in whatever order: Prosody is up and
    # its memory grew by less than the bound
    alive, growth = p.proc.poll() is None, p.rss_kib() - p.rss_start if p.proc.poll() is None else None
    p.stop()
    print("Prosody RSS: %d KiB at start, %+s KiB after the battery" % (p.rss_start, growth))
    assert alive, "Prosody died during the battery"
    assert growth <= MEMORY_BOUND_KIB, "Prosody's RSS grew by %d KiB" % growth


def tok(p, jid="mallory", **kw):
    return p.mint(jid if "@" in jid else jid + "@" + p.host, **kw).encode()


def raw_tok(p, jid):
    """A token whose signature covers `jid` byte for byte (as a web app that does not nodeprep
    would sign it; the CLI signs the nodeprep'd form)."""
    return create_token(jid + "@" + p.host, p.otp_seed, p.token_secret).encode()


def mac_b64(p):
    return tok(p).split(b" ")[1]


def public(p, user="mallory"):
    return tok(p, user).split(b" ")[0]


@dataclass
class Case:
    name: str
    mech: str
    payload: Callable  # server -> bytes (or None for no initial response)
    condition: str
    reason: Optional[str]  # log reason, or None when Prosody refuses before the plugin sees it
    transport: str = "c2s"


P, X, H = "PLAIN", "X-TOKEN", "SASL-HMAC"
M = b"\0mallory\0"
CASES = [
    # sizes
    Case("token of 7000 bytes", P, lambda p: M + b"1" * 7000 + b" " + mac_b64(p), "malformed-request", "malformed"),
    Case("token just over 1 KiB", X, lambda p: M + b"1" * 1000 + b" " + mac_b64(p), "malformed-request", "malformed"),
    Case("10000-digit nonce (BOSH: c2s refuses the stanza size)", P,
         lambda p: M + public(p) + b"1" * 10000 + b" " + mac_b64(p), "malformed-request", "malformed", "bosh"),
    Case("3000-byte authcid", P, lambda p: b"\0" + b"a" * 3000 + b"\0" + tok(p), "malformed-request", "malformed"),
    Case("5000-byte authzid", X, lambda p: b"a" * 5000 + M + tok(p), "malformed-request", "malformed"),
    # NUL bytes in each field
    Case("NUL inside the authzid (four fields)", P, lambda p: b"al\0ice" + M + tok(p), "malformed-request", "malformed"),
    Case("NUL inside the authcid", X, lambda p: b"\0mal\0lory\0" + tok(p), "malformed-request", "malformed"),
    Case("NUL inside the token", P, lambda p: M + tok(p).replace(b" ", b"\0"), "malformed-request", "malformed"),
    Case("trailing NUL after the token", X, lambda p: M + tok(p) + b"\0", "malformed-request", "malformed"),
    Case("only NULs", P, lambda p: b"\0\0\0\0", "malformed-request", None),
    Case("empty authcid", P, lambda p: b"\0\0" + tok(p), "malformed-request", None),
    # invalid UTF-8
    Case("invalid UTF-8 in the authcid", P, lambda p: b"\0mal\xfflory\0" + tok(p), "malformed-request", None),
    Case("invalid UTF-8 in the authzid", X, lambda p: b"\xc3\x28" + M + tok(p), "malformed-request", "malformed"),
    Case("invalid UTF-8 in the token", P, lambda p: M + b"\xff" + tok(p), "malformed-request", "malformed"),
    # base64 variants
    Case("space inside the base64", P, lambda p: M + tok(p)[:50] + b" " + tok(p)[50:], "malformed-request", "malformed"),
    Case("newline inside the base64", X, lambda p: M + tok(p)[:-10] + b"\n" + tok(p)[-10:], "malformed-request", "malformed"),
    Case("tab instead of the space", P, lambda p: M + tok(p).replace(b" ", b"\t"), "malformed-request", "malformed"),
    # always at least one URL-safe character (a random MAC has no '+' or '/' about 1 time in 8)
    Case("URL-safe base64", P, lambda p: M + public(p) + b" -" + mac_b64(p)[1:].replace(b"+", b"-").replace(b"/", b"_"),
         "malformed-request", "malformed"),
    Case("unpadded base64", X, lambda p: M + tok(p).rstrip(b"="), "malformed-request", "malformed"),
    Case("hex MAC", P, lambda p: M + public(p) + b" " + base64.b64decode(mac_b64(p)).hex().encode(), "malformed-request", "malformed"),
    Case("two tokens", X, lambda p: M + tok(p) + b" " + tok(p), "malformed-request", "malformed"),
    # OTP / nonce shape
    Case("plus sign before the OTP", P, lambda p: M + b"+" + tok(p), "malformed-request", "malformed"),
    Case("minus sign in the nonce", P, lambda p: M + public(p)[:20] + b"-" + public(p)[21:] + b" " + mac_b64(p), "malformed-request", "malformed"),
    Case("OTP of 7 digits only", X, lambda p: M + b"1234567 " + mac_b64(p), "malformed-request", "malformed"),
    Case("fullwidth digits", P, lambda p: M + "１２３４５６７８".encode() + b" " + mac_b64(p), "malformed-request", "malformed"),
    # identities
    Case("mixed-case authcid, token for the upper-case JID", P, lambda p: b"\0MaLLory\0" + raw_tok(p, "MALLORY"), "not-authorized", "bad-signature"),
    Case("mixed-case authcid, token for the JID as sent", X, lambda p: b"\0MaLLory\0" + raw_tok(p, "MaLLory"), "not-authorized", "bad-signature"),
    Case("fullwidth authcid, token for the JID as sent", P, lambda p: "\0ｍａｌｌｏｒｙ\0".encode() + raw_tok(p, "ｍａｌｌｏｒｙ"), "not-authorized", "bad-signature"),
    Case("unicode authcid, token for another user", X, lambda p: "\0mällory\0".encode() + tok(p), "not-authorized", "bad-signature"),
    Case("authcid nodeprep refuses (space)", P, lambda p: b"\0mal lory\0" + tok(p), "malformed-request", "malformed"),
    Case("authcid with a line break (log injection)", P, lambda p: b"\0mallory\nFAKE LINE\0" + tok(p), "malformed-request", "malformed"),
    Case("authcid with a resource", X, lambda p: ("\0mallory@%s/res\0" % p.host).encode() + tok(p), "malformed-request", "malformed"),
    Case("authcid of another host", P, lambda p: ("\0mallory@%s\0" % p.other_host).encode() + tok(p), "not-authorized", "wrong-host"),
    Case("authzid of another user", P, lambda p: ("eve@%s" % p.host).encode() + M + tok(p), "invalid-authzid", "invalid-authzid"),
    Case("authzid with a resource", X, lambda p: ("mallory@%s/x" % p.host).encode() + M + tok(p), "invalid-authzid", "invalid-authzid"),
    Case("authzid of another host", P, lambda p: ("mallory@%s" % p.other_host).encode() + M + tok(p), "invalid-authzid", "invalid-authzid"),
    Case("token signed for the empty JID", P, lambda p: M + public(p) + b" " + base64.b64encode(b"\0" * 32), "not-authorized", "bad-signature"),
    Case("another host's secret", X, lambda p: M + p.mint("mallory@" + p.host, secret=p.other_token_secret).encode(), "not-authorized", "bad-signature"),
    Case("OTP from a different seed", P, lambda p: M + p.mint("mallory@" + p.host, seed="AAAAAAAAAAAAAAAA").encode(), "not-authorized", "otp-mismatch"),
    # SASL-HMAC
    Case("SASL-HMAC: four fields", H, lambda p: M + public(p) + b"\0extra", "malformed-request", "malformed"),
    Case("SASL-HMAC: whole token instead of its public half", H, lambda p: M + tok(p), "malformed-request", "malformed"),
    Case("SASL-HMAC: NUL-only", H, lambda p: b"\0\0", "malformed-request", None),
    Case("SASL-HMAC: invalid UTF-8 authcid", H, lambda p: b"\0\xfe\0" + public(p), "malformed-request", None),
    Case("SASL-HMAC: huge nonce over BOSH", H, lambda p: M + public(p) + b"9" * 20000, "malformed-request", "malformed", "bosh"),
    # Prosody-level
    Case("empty initial response for PLAIN", P, lambda p: None, "malformed-request", "malformed"),
    Case("unknown mechanism", "SASL-HMAC-SHA512", lambda p: M + tok(p), "invalid-mechanism", None),
    Case("lower-case mechanism name", "plain", lambda p: M + tok(p), "invalid-mechanism", None),
]


def test_the_battery_is_large_enough():
    assert len(CASES) + 6 >= 40  # plus the sequence tests below


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(server, case):
    mark = server.log_mark()
    s = connect(server, case.transport)
    try:
        payload = case.payload(server)
        r = s.auth(case.mech, payload)
        if refused_for_size_over_bosh(case.transport, case.mech, payload):
            # Prosody ended that BOSH session before SASL; the next one logs in
            assert_refused_for_size_over_bosh(server, mark, r)
            s.close()
            s = connect(server, case.transport)
            assert s.auth("PLAIN", M + tok(server)).status == "success"
            return
        assert (r.status, r.condition) == ("failure", case.condition), r
        log = server.wait_log(mark, ": " + case.reason if case.reason else "probe: authentication-failure")
        lines = [l for l in log.splitlines() if re.search(r"Failed \S+ token login for .* from 127\.0\.0\.1: ", l)]
        if case.reason:
            # the reason ends the line, or is followed by its explanation (expired: the clock offset;
            # otp-mismatch: that no step matches)
            assert len(lines) == 1 and re.search(r": %s(?: \(.*\))?$" % re.escape(case.reason), lines[0]), log
            if case.name == "OTP from a different seed":  # signature good, no step within a day
                assert "no OTP step within 24 h matches" in lines[0], lines[0]
        else:
            assert len(lines) <= 1
        for line in log.splitlines():
            assert not line.startswith("FAKE LINE"), "a client forged a log line"
        # the same stream takes a valid login right after
        r = s.auth("PLAIN", b"\0mallory\0" + tok(server))
        assert r.status == "success", r
    finally:
        s.close()


def test_auth_repeated_on_one_stream(server):
    s = connect(server, "c2s")
    try:
        for _ in range(4):  # under token_max_failures (5)
            assert s.auth("X-TOKEN", M + b"1 x").condition == "malformed-request"
        cfm = M + public(server)
        assert s.auth("SASL-HMAC", cfm).status == "challenge"
        assert s.auth("SASL-HMAC", cfm).status == "challenge"  # a new <auth/> restarts the exchange
        assert s.auth("PLAIN", M + tok(server)).status == "success"
    finally:
        s.close()


def test_auth_after_success_does_not_authenticate_again(server):
    """Prosody answers <auth/> on an authenticated stream with a stream error; the plugin never sees
    it, so the second user's token is not used up."""
    eve_token = tok(server, "eve")
    s = connect(server, "c2s")
    try:
        assert s.auth("PLAIN", M + tok(server)).status == "success"
        s.restart()
        r = s.auth("PLAIN", b"\0eve\0" + eve_token)
        assert (r.status, r.condition) == ("stream-error", "unsupported-stanza-type")
        assert s.recv() is None  # closed
    finally:
        s.close()
    s = connect(server, "c2s")
    try:
        assert s.auth("PLAIN", b"\0eve\0" + eve_token).status == "success"
    finally:
        s.close()


def test_response_without_challenge_and_abort(server):
    s = connect(server, "websocket")
    try:
        r = s.response(b"\0" * 32)
        assert (r.status, r.condition) == ("failure", "not-authorized")
        r = s.abort()
        assert (r.status, r.condition) == ("failure", "aborted")
        assert s.auth("SASL-HMAC", M + public(server)).status == "challenge"
        r = s.abort()
        assert (r.status, r.condition) == ("failure", "aborted")
        cfm, secret_half, ch = begin(s, "mallory", tok(server))
        assert s.response(sh.client_proof(secret_half, cfm, ch.data)).status == "success"
    finally:
        s.close()


def test_invalid_base64_in_the_auth_element(server):
    s = connect(server, "c2s")
    try:
        s.send_raw("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!not base64!!!</auth>")
        r = s.recv_result()
        assert (r.status, r.condition) == ("failure", "incorrect-encoding")
        assert s.auth("PLAIN", M + tok(server)).status == "success"
    finally:
        s.close()


def test_slow_drip(server):
    """A valid <auth/> sent a few bytes at a time over 3 seconds logs in once Prosody's XML parser has
    it whole, and no piece of it reaches the plugin. Expat's reparse deferral (2.6.0, CVE-2023-52425;
    in Debian's libexpat1 since bookworm's 2.5.0-1+deb12u2, and in trixie's) parses an incomplete
    token again only once the unparsed bytes have doubled, so the end of a dripped element waits for
    the client's next bytes: here a whitespace keepalive (RFC 6120 4.6.1) as long as the element. An
    older Expat answers before the keepalive."""
    mark = server.log_mark()
    s = connect(server, "c2s")
    try:
        wire = ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                % base64.b64encode(M + tok(server)).decode()).encode()
        for i in range(0, len(wire), 3):
            s.send_raw(wire[i:i + 3])
            time.sleep(3.0 / (len(wire) / 3))
        s.send_raw(b" " * len(wire))
        r = s.recv_result()
        log = server.wait_log(mark, "Authenticated as mallory@")
        assert r.status == "success", "%s\n%s" % (r, log)
        assert "Authenticated as mallory@%s" % server.host in log, log
        assert "token login for" not in log, log
    finally:
        s.close()


@pytest.mark.parametrize("transport", ["c2s", "bosh", "websocket"])
def test_thousands_of_failures_from_one_connection(server, transport):
    """2 000 bad <auth/> sent at once (one TCP write, one BOSH request, one WebSocket burst): five
    log lines, one line saying the stream is closed, then a policy-violation stream error; what the
    client sent after the fifth is refused without a line each. The next connection logs in."""
    mark = server.log_mark()
    s = connect(server, transport)
    n = 2000
    bad = ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>%s</auth>"
           % base64.b64encode(M + public(server) + b" " + base64.b64encode(b"\1" * 32)).decode())
    try:
        if transport == "websocket":  # one stanza a frame; Prosody closes the socket part-way
            for _ in range(n):
                s.send_raw(bad)
        else:
            s.send_raw(bad * n)
        results = []
        for _ in range(n + 2):
            el = s.recv()
            if el is None:
                break
            r = rawxmpp.interpret(el)
            if r is not None:
                results.append(r)
                if r.status == "stream-error":
                    break
        if transport == "c2s":  # the stream error, unless the close overtook our own sending (a reset)
            assert results[0].status == "failure", results[:3]
            if results[-1].status == "stream-error":
                assert results[-1].condition == "policy-violation", results[-1]
            else:
                assert s.closed, results[-3:]
        elif transport == "bosh":  # the failures come back in the response; then the session is gone
            assert results[0].status == "failure" and s.terminated, (results[-3:], s.terminated)
        else:
            assert s.closed
    finally:
        s.close()
    log = server.wait_log(mark, "Closing the stream from 127.0.0.1 after 5 failed token logins")
    assert log.count("Failed X-TOKEN token login for mallory@%s from 127.0.0.1: bad-signature" % server.host) == 5, log[-2000:]
    assert log.count("Closing the stream from 127.0.0.1 after 5 failed token logins") == 1
    s = connect(server, transport)
    try:
        assert s.auth("X-TOKEN", M + tok(server)).status == "success"
    finally:
        s.close()


class ForwardedBosh(rawxmpp.Bosh):
    """BOSH through a proxy that names the client (loopback is one of Prosody's trusted_proxies)."""

    def __init__(self, url, domain, client):
        self.client = client
        super().__init__(url, domain)

    def _exchange(self, text):
        req = urllib.request.Request(self.url, data=text.encode("utf-8"), headers={
            "Content-Type": "text/xml; charset=utf-8", "X-Forwarded-For": self.client})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, b""


def test_a_new_bosh_session_every_five_failures_is_bounded_per_address():
    """One client opening a new BOSH session after each token_max_failures failures (it wrote 174
    lines a second so): with the shipped per-address budget (20 a minute) at most that many lines
    from its address in a minute (two minutes' worth if the run straddles one; the spec shows its
    later streams closed at their first failure); another client's failures are logged, and its
    logins work."""
    server = Prosody(max_failures_per_address=None).start()
    try:
        bad = ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>%s</auth>"
               % base64.b64encode(M + public(server) + b" " + base64.b64encode(b"\1" * 32)).decode())
        mark = server.log_mark()
        started = time.monotonic()
        per_session = []
        for _ in range(60):
            s = ForwardedBosh(server.bosh_url, server.host, "203.0.113.50")
            n = 0
            try:
                for _ in range(6):
                    s.send_raw(bad)
                    r = s.recv_result()
                    if r.status != "failure":  # the session is gone: closed after the last failure
                        assert (r.status, r.condition) == ("stream-error", "item-not-found"), r
                        break
                    n += 1
            finally:
                s.close()
            per_session.append(n)
        failures = sum(per_session)
        elapsed = time.monotonic() - started
        line = "Failed X-TOKEN token login for mallory@%s from 203.0.113.50: bad-signature" % server.host
        log = server.wait_log(mark, "Closing the stream from 203.0.113.50")
        windows = 2 + int(elapsed // 60)  # the minutes the run touched
        assert log.count(line) <= 20 * windows, (log.count(line), per_session)
        assert failures >= 60 and log.count(line) < failures, per_session
        other = ForwardedBosh(server.bosh_url, server.host, "198.51.100.7")
        try:
            other.send_raw(bad)
            assert other.recv_result().status == "failure"
            assert other.auth("X-TOKEN", M + tok(server)).status == "success"
        finally:
            other.close()
        assert "from 198.51.100.7: bad-signature" in server.wait_log(mark, "from 198.51.100.7: bad-signature")
    finally:
        server.stop()
