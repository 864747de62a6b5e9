"""prosody_hmac_token's sign-out (docs/signout.md): the request against tests/vectors/signout.json,
and signout() against a small HTTP server in this process.

Run: /usr/bin/python3 -m pytest -q clients/python/tests
"""
import base64
import http.server
import json
import math
import pathlib
import re
import socket
import sys
import threading
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # the package, without installing it

import prosody_hmac_token as pht  # noqa: E402

SIGNOUT = json.loads((HERE.parent.parent.parent / "tests" / "vectors" / "signout.json").read_text(encoding="utf-8"))
SECRET = SIGNOUT["secrets"][0]
JID = "alice@example.org"
NOW = 1700000000


def _hidden(exc, values):
    text = str(exc) + repr(exc) + repr(exc.args)
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        text += str(cause) + repr(cause)
    return not any(v and v in text for v in values)


def refused_jid_cases():
    """The vectors' requests refused as malformed for their JID alone: every other field well
    formed (v1, TIME, a 32-digit NONCE, a canonical MAC). A library must not build them."""
    cases = []
    for case in SIGNOUT["cases"]:
        fields = case["line"].split(" ")
        if case["expect"] != "malformed" or len(fields) != 5:
            continue
        version, t, nonce, jid, mac = fields
        try:
            raw = base64.b64decode(mac, validate=True)
        except ValueError:
            raw = b""
        canonical = len(raw) == 32 and base64.b64encode(raw).decode() == mac
        if (version == "v1" and re.fullmatch(r"[1-9][0-9]{0,19}", t) and int(t) < 2**64
                and re.fullmatch(r"[0-9]{32}", nonce) and canonical):
            cases.append((case["name"], int(t), nonce, jid))
    return cases


# ---------------------------------------------------------------------------------------------
# signout.json


def test_signout_vectors_build_each_line():
    """Every case with `mint` (the secret, time, nonce and JID): the library writes its line exactly."""
    minted = [c for c in SIGNOUT["cases"] if "mint" in c]
    assert len(minted) >= 10
    failures = []
    for case in minted:
        m = case["mint"]
        line = pht.signout_request(m["jid"], m["secret"], now=m["time"], nonce=m["nonce"])
        if line != case["line"]:
            failures.append("%s: %r, want %r" % (case["name"], line, case["line"]))
    assert failures == []


def test_signout_vectors_refused_jids_are_not_built():
    cases = refused_jid_cases()
    assert len(cases) >= 10, cases
    built = []
    for name, t, nonce, jid in cases:
        try:
            pht.signout_request(jid, SECRET, now=t, nonce=nonce)
            built.append(name)
        except pht.TokenError as e:
            assert e.kind == "jid", (name, e.kind)
    assert built == []


# ---------------------------------------------------------------------------------------------
# The request's parts


def test_nonce_is_32_csprng_digits(monkeypatch):
    calls = []

    def fake_token_bytes(n):
        calls.append(n)
        return bytes([255, 250, 249, 13] + [0] * (n - 4))  # 250..255 are rejected (no modulo bias)

    monkeypatch.setattr(pht.secrets, "token_bytes", fake_token_bytes)
    line = pht.signout_request(JID, SECRET, now=NOW)
    assert calls == [32, 32]
    assert line.split(" ")[2] == "93" + "0" * 28 + "93"


def test_nonces_are_fresh():
    nonces = {pht.signout_request(JID, SECRET, now=NOW).split(" ")[2] for _ in range(200)}
    assert len(nonces) == 200
    assert all(len(n) == 32 and set(n) <= set("0123456789") for n in nonces)


def test_now_defaults_to_the_clock(monkeypatch):
    monkeypatch.setattr(pht.time, "time", lambda: 1700000000.9)
    nonce = "7" * 32
    assert pht.signout_request(JID, SECRET, nonce=nonce) == pht.signout_request(JID, SECRET, now=NOW, nonce=nonce)
    assert pht.signout_request(JID, SECRET, nonce=nonce).split(" ")[1] == "1700000000"


@pytest.mark.parametrize("now", [0, -1, 2**64, 1700000000.0, "1700000000", True])
def test_now_out_of_range(now):
    with pytest.raises(pht.TokenError) as info:
        pht.signout_request(JID, SECRET, now=now)
    assert info.value.kind == "settings"


def test_now_range_ends():
    assert pht.signout_request(JID, SECRET, now=1).split(" ")[1] == "1"
    assert pht.signout_request(JID, SECRET, now=2**64 - 1).split(" ")[1] == "18446744073709551615"


@pytest.mark.parametrize("nonce", ["1" * 31, "1" * 33, "1" * 31 + "x", "١" * 32, 7])
def test_nonce_errors(nonce):
    with pytest.raises(pht.TokenError) as info:
        pht.signout_request(JID, SECRET, now=NOW, nonce=nonce)
    assert info.value.kind == "nonce"


@pytest.mark.parametrize(
    "jid",
    ["Alice@example.org", "alicE@example.org", "alice@Example.org", "alice@example.org/web", "al ice@example.org",
     "al\u3000ice@example.org", "al\u00a0ice@example.org", "a" * 1024 + "@example.org", "alice@" + "a" * 1024,
     "", "alice", "@example.org", "alice@", "a@b@example.org", None, "jÜrgen@example.org", "ǅa@example.org",
     "al\u00adice@example.org", "al\u200bice@example.org", "al\ufe0fice@example.org", "al\u0085ice@example.org",
     "al\ue000ice@example.org", "aاb@example.org", "اb@example.org", "aا@example.org", "اbا@example.org"],
)
def test_jid_not_prepared_is_refused(jid):
    with pytest.raises(pht.TokenError) as info:
        pht.signout_request(jid, SECRET, now=NOW)
    assert info.value.kind == "jid"


def test_prepared_jid_is_signed_as_given():
    longest = "a" * 1023 + "@" + "b" * 1023  # 2047 octets
    assert pht.signout_request(longest, SECRET, now=NOW).split(" ")[3] == longest
    for prepared in ("ñandú@example.org", "اب@example.org", "ا1ب@example.org", "o.brien-smith_2+x@example.org"):
        assert pht.signout_request(prepared, SECRET, now=NOW).split(" ")[3] == prepared


@pytest.mark.parametrize("secret", ["", b"", None, "x\ud800"])
def test_unusable_secret(secret):
    with pytest.raises(pht.TokenError) as info:
        pht.signout_request(JID, secret, now=NOW)
    assert info.value.kind == "settings"


def test_bytes_secret_is_the_same_key():
    nonce = "3" * 32
    assert pht.signout_request(JID, SECRET.encode(), now=NOW, nonce=nonce) == pht.signout_request(
        JID, SECRET, now=NOW, nonce=nonce)


def test_a_login_token_is_never_a_signout_mac():
    """The request's MAC is under the derived key: not HMAC(token_secret, ...) of the same bytes."""
    line = pht.signout_request(JID, SECRET, now=NOW, nonce="0" * 32)
    mac = line.split(" ")[4]
    assert mac != pht.base64.b64encode(pht._mac(SECRET.encode(), "0" * 32, JID)).decode()
    assert pht._signout_mac(SECRET.encode(), NOW, "0" * 32, JID) != pht.hmac.new(
        SECRET.encode(), pht._SIGNOUT_LABEL + pht.struct.pack(">Q", NOW) + b"0" * 32 + b"\x00\x11" + JID.encode(),
        "sha256").digest()


# ---------------------------------------------------------------------------------------------
# signout(): the delivery, against a server in this process


class Server:
    """An HTTP server on 127.0.0.1 that records each request and answers `status`."""

    def __init__(self, status=200, headers=None):
        self.status, self.headers, self.requests = status, headers or {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(server.status)
                for k, v in server.headers.items():
                    self.send_header(k, v)
                answer = b"accepted" if server.status == 200 else b"refused"
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_GET = _record

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/auth_hmac/signout" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_signout_posts_the_request_as_text_plain(server):
    assert pht.signout(server.url, JID, SECRET, now=NOW) is None
    (method, path, headers, body), = server.requests
    assert method == "POST" and path == "/auth_hmac/signout"
    assert headers["Content-Type"] == "text/plain"
    assert headers["Host"] == "example.org"  # Prosody routes a host's HTTP paths by it
    line = body.decode("ascii")
    nonce = line.split(" ")[2]
    assert line == pht.signout_request(JID, SECRET, now=NOW, nonce=nonce)


def test_signout_host_header_can_be_named(server):
    pht.signout(server.url, JID, SECRET, now=NOW, host="chat.example.org")
    assert server.requests[0][2]["Host"] == "chat.example.org"


@pytest.mark.parametrize("host", ["", "a b", "a\r\nX-Evil: 1", "ñ.example", 5])
def test_signout_bad_host_sends_nothing(server, host):
    with pytest.raises(pht.TokenError) as info:
        pht.signout(server.url, JID, SECRET, now=NOW, host=host)
    assert info.value.kind == "settings"
    assert server.requests == []


def test_each_signout_has_a_fresh_nonce(server):
    pht.signout(server.url, JID, SECRET, now=NOW)
    pht.signout(server.url, JID, SECRET, now=NOW)
    first, second = (body.split(b" ")[2] for _, _, _, body in server.requests)
    assert first != second


def test_signout_ignores_proxy_settings(server, monkeypatch):
    """The request goes to Prosody itself, never through a proxy named in the environment."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    pht.signout(server.url, JID, SECRET, now=NOW)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status,kind", [(403, "refused"), (404, "http"), (500, "http"), (204, "http")])
def test_signout_not_accepted_raises(server, status, kind):
    server.status = status
    with pytest.raises(pht.SignoutError) as info:
        pht.signout(server.url, JID, SECRET, now=NOW)
    assert info.value.kind == kind and info.value.status == status
    body = server.requests[0][3].decode()
    assert _hidden(info.value, [body, body.split(" ")[4], SECRET])


def test_signout_follows_no_redirect(server):
    server.status, server.headers = 307, {"Location": "http://127.0.0.1:9/elsewhere"}
    with pytest.raises(pht.SignoutError) as info:
        pht.signout(server.url, JID, SECRET, now=NOW)
    assert info.value.kind == "http" and info.value.status == 307
    assert len(server.requests) == 1


def test_signout_times_out():
    """A server that takes the connection and never answers: the injected timeout ends the wait."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # connections complete in the backlog; nothing is ever read or answered
    url = "http://127.0.0.1:%d/auth_hmac/signout" % listener.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(pht.SignoutError) as info:
            pht.signout(url, JID, SECRET, now=NOW, timeout=0.3)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert info.value.kind == "network" and info.value.status is None
    assert "timed out" in str(info.value)
    assert 0.3 <= elapsed < 3, elapsed
    assert _hidden(info.value, [SECRET, "v1 %d" % NOW])


def test_signout_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    with pytest.raises(pht.SignoutError) as info:
        pht.signout("http://127.0.0.1:%d/auth_hmac/signout" % port, JID, SECRET, now=NOW)
    assert info.value.kind == "network"
    assert _hidden(info.value, [SECRET, "v1 %d" % NOW])


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1:5280/auth_hmac/signout", "http:///x",
            "http://127.0.0.1:99999/", None],
)
def test_signout_bad_url_sends_nothing(server, url):
    with pytest.raises(pht.TokenError) as info:
        pht.signout(url, JID, SECRET, now=NOW)
    assert info.value.kind == "settings"
    assert server.requests == []


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, 601, True, "5", None])
def test_signout_bad_timeout_sends_nothing(server, timeout):
    with pytest.raises(pht.TokenError) as info:
        pht.signout(server.url, JID, SECRET, now=NOW, timeout=timeout)
    assert info.value.kind == "settings"
    assert server.requests == []


def test_signout_bad_jid_sends_nothing(server):
    with pytest.raises(pht.TokenError) as info:
        pht.signout(server.url, "Alice@example.org", SECRET, now=NOW)
    assert info.value.kind == "jid"
    assert server.requests == []


def test_public_api():
    for name in ("signout_request", "signout", "SignoutError"):
        assert name in pht.__all__
        assert getattr(pht, name).__doc__
