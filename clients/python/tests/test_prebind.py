"""prosody_hmac_token.prebind (docs/prebind.md) against the scripted servers of
tests/vectors/prebind.json, through a fake transport that checks every request the client makes.

Run: /usr/bin/python3 -m pytest -q clients/python/tests
"""
import base64
import json
import pathlib
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # the package, without installing it

import prosody_hmac_token as pht  # noqa: E402

VECTORS = json.loads((HERE.parent.parent.parent / "tests" / "vectors" / "prebind.json").read_text(encoding="utf-8"))
NS_BOSH = "{http://jabber.org/protocol/httpbind}"
NS_SASL = "{urn:ietf:params:xml:ns:xmpp-sasl}"
URL = "http://127.0.0.1:1/http-bind"  # loopback: http:// is allowed (never reached: a fake transport)


class ScriptBroken(Exception):
    """The client sent what the script does not expect: the case fails (not a PrebindError)."""


class Fake:
    """Answers each request with the script's next step, after checking the request is that step's."""

    def __init__(self, case):
        self.case = case
        self.steps = list(case["script"])
        self.rids = []
        self.sent = []
        self.lefts = []

    def kind(self, body):
        if body.tag != NS_BOSH + "body":
            return "not a BOSH body"
        if "sid" not in body.attrib:
            domain = self.case["jid"].split("@")[1]
            return "create" if body.get("to") == domain and body.get("hold") == "1" and len(body) == 0 else "bad create"
        if body.get("sid") != VECTORS["sid"]:
            return "wrong sid"
        if body.get("{urn:xmpp:xbosh}restart") == "true":
            return "restart" if len(body) == 0 else "bad restart"
        if len(body) == 0:
            return "poll"
        if len(body) != 1:
            return "several elements"
        el = body[0]
        if el.tag == NS_SASL + "auth":
            return ("auth", el.text) if el.get("mechanism") == "SASL-HMAC" else "auth " + str(el.get("mechanism"))
        if el.tag == NS_SASL + "response":
            return ("response", el.text)
        if el.tag == "{jabber:client}iq" and el.get("type") == "set" and el.find("{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None:
            return "bind"
        return "unknown " + el.tag

    def __call__(self, data, left):
        assert isinstance(data, bytes)
        self.sent.append(data)
        self.lefts.append(left)
        body = ET.fromstring(data)
        self.rids.append(int(body.get("rid")))
        if not self.steps:
            raise ScriptBroken("sent after the script ended: %r" % data)
        step = self.steps.pop(0)
        got = self.kind(body)
        want = (step["request"], step["payload"]) if "payload" in step else step["request"]
        if got != want:
            raise ScriptBroken("sent %r, the script expects %r" % (got, want))
        if step["response"] is None:
            raise ConnectionRefusedError("connection refused")
        if "response_base64" in step:
            return step.get("status", 200), base64.b64decode(step["response_base64"])
        return step.get("status", 200), step["response"].encode("utf-8")


def run(case):
    fake = Fake(case)
    try:
        outcome = pht.prebind("http://127.0.0.1:1/http-bind", case["jid"], case["token"], transport=fake)
    except pht.PrebindError as e:
        outcome = e
    return fake, outcome


def _hidden(exc, token):
    """The message holds neither the token nor its parts, and no local of the library's traceback
    frames holds S (as base64, bytes or hex); the first frame, the caller's, is not looked at."""
    public, mac = token.split(" ")
    s = base64.b64decode(mac)
    text = str(exc) + repr(exc) + repr(exc.args)
    if public in text or mac in text or mac[:20] in text:
        return False
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    while tb is not None:
        for v in tb.tb_frame.f_locals.values():
            r = repr(v)
            if mac[:20] in r or repr(s)[2:30] in r or s.hex()[:20] in r:
                return False
        tb = tb.tb_next
    return True


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_prebind_vectors(case):
    fake, outcome = run(case)
    assert fake.rids == list(range(fake.rids[0], fake.rids[0] + len(fake.rids))), "rids count up by one"
    assert 0 < fake.rids[0] < 2**53 - 2**32
    expect = case["expect"]
    if "error" in expect:
        assert isinstance(outcome, pht.PrebindError), outcome
        assert (outcome.kind, outcome.condition) == (expect["error"], expect.get("condition")), str(outcome)
        assert _hidden(outcome, case["token"])
        if expect["error"] == "unproven" and case["script"][-1]["request"] != "bind":
            # nothing after the unproven step, and no bearer mechanism ever
            assert not any(b"PLAIN" in d or b"X-TOKEN" in d for d in fake.sent)
    else:
        assert outcome == {"jid": expect["jid"], "sid": expect["sid"], "rid": fake.rids[-1] + 1}
    assert fake.steps == [], "the client stopped before the script's end"


def test_vectors_cover_each_kind():
    kinds = [c["expect"].get("error", "ok") for c in VECTORS["cases"]]
    assert {k: kinds.count(k) >= 3 for k in ("ok", "refused", "unproven", "transport")} == dict.fromkeys(
        ("ok", "refused", "unproven", "transport"), True)


def _genuine():
    return next(c for c in VECTORS["cases"] if c["name"] == "the genuine exchange")


def _fresh(case, n):
    """The case with another token for the same JID (a token is tried once per process): the
    script's payloads no longer match, so only what happens before the auth is checked."""
    public, mac = case["token"].split(" ")
    return public[:-6] + "9%05d" % n + " " + mac  # the vectors number theirs from 1


def test_a_token_is_sent_once():
    case = dict(_genuine(), name="once", token=_fresh(_genuine(), 1))
    case["script"] = case["script"][:1] + [dict(case["script"][1], payload="(any)")]
    fake = Fake(case)
    with pytest.raises(ScriptBroken):
        pht.prebind(URL, case["jid"], case["token"], transport=fake)
    fake2 = Fake(case)
    with pytest.raises(pht.TokenError) as info:
        pht.prebind(URL, case["jid"], case["token"], transport=fake2)
    assert info.value.kind == "token" and fake2.sent == []
    assert _hidden(info.value, case["token"])


def test_refusals_before_anything_is_sent():
    case = _genuine()
    fake = Fake(case)
    for jid, token, kind in [
        ("alice", case["token"], "jid"),
        ("alice@example.org/res", case["token"], "jid"),
        (case["jid"], "not a token", "token"),
        (case["jid"], case["token"].replace(" ", "  "), "token"),
        (case["jid"], case["token"][:-2] + "==", "token"),
        (case["jid"], _fresh(case, 6).split(" ")[0] + " " + case["token"].split(" ")[1][:42] + "B=", "token"),  # not canonical
        (case["jid"], None, "token"),
    ]:
        with pytest.raises(pht.TokenError) as info:
            pht.prebind(URL, jid, token, transport=fake)
        assert info.value.kind == kind, (jid, token, info.value)
        if isinstance(token, str) and token.count(" ") == 1:  # a token's shape: its S is in no frame either
            assert _hidden(info.value, token)
    for kwargs in [{"timeout": 0}, {"timeout": 601}, {"timeout": float("nan")}, {"resource": ""},
                   {"resource": "a\nb"}, {"transport": "not callable"}]:
        with pytest.raises(pht.TokenError) as info:
            pht.prebind(URL, case["jid"], _fresh(case, 2), **dict({"transport": fake}, **kwargs))
        assert info.value.kind == "settings"
    with pytest.raises(pht.TokenError):
        pht.prebind("ftp://x/", case["jid"], _fresh(case, 3))
    assert fake.sent == []


def test_the_timeout_bounds_every_request(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(pht.time, "monotonic", lambda: clock[0])
    case = dict(_genuine(), token=_fresh(_genuine(), 4))
    lefts = []

    def slow(data, left):
        lefts.append(left)
        clock[0] += 3.0  # each answer takes 3 s of the 7 allowed
        return 200, b"<body xmlns='http://jabber.org/protocol/httpbind' sid='s'/>"

    with pytest.raises(pht.PrebindError) as info:
        pht.prebind(URL, case["jid"], case["token"], timeout=7, transport=slow)
    assert info.value.kind == "transport" and "in time" in str(info.value)
    assert lefts == [7.0, 4.0, 1.0]
    assert _hidden(info.value, case["token"])


def test_the_wait_asked_for_is_within_the_timeout():
    case = dict(_genuine(), token=_fresh(_genuine(), 5))
    sent = []

    def record(data, left):
        sent.append(ET.fromstring(data))
        raise OSError("down")

    with pytest.raises(pht.PrebindError) as info:
        pht.prebind(URL, case["jid"], case["token"], timeout=2.5, transport=record)
    assert info.value.kind == "transport" and sent[0].get("wait") == "3"



def _creation_answer(inner):
    return ("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s'>%s</body>" % (VECTORS["sid"], inner)).encode()


_FEATURES = ("<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
             "<mechanism>SASL-HMAC</mechanism></mechanisms></stream:features>")


def _first_answer(answer, n, **kwargs):
    """prebind against a server whose creation answer is `answer`: (outcome, requests sent)."""
    case = dict(_genuine(), token=_fresh(_genuine(), n))
    sent = []

    def transport(data, left):
        sent.append(data)
        if len(sent) == 1:
            return 200, answer
        raise OSError("the test server has nothing more to say")

    try:
        outcome = pht.prebind(kwargs.pop("url", URL), case["jid"], case["token"], transport=transport, **kwargs)
    except (pht.PrebindError, pht.TokenError) as e:
        outcome = e
        assert _hidden(e, case["token"])
    return outcome, sent


def test_only_utf8_answers_are_read():
    """Whatever the answer declares: an encoding Python does not know, one it decodes another way,
    UTF-16 or UTF-32 with or without a byte order mark. Each is a transport error, never another
    exception and never an <auth/>."""
    body = _creation_answer(_FEATURES).decode()
    for n, (answer, why) in enumerate([
        (b"<?xml version='1.0' encoding='x-nope'?>" + body.encode(), "another encoding"),
        (b"<?xml version='1.0' encoding='utf-7'?>" + body.encode(), "another encoding"),
        (b"<?xml version='1.0' encoding='shift_jis'?>" + body.encode(), "another encoding"),
        (b"<?xml version='1.0' encoding='ISO-8859-1'?>" + body.encode(), "another encoding"),
        (("<?xml version='1.0' encoding='UTF-16'?>" + body).encode("utf-16"), "not UTF-8"),
        (("<?xml version='1.0' encoding='UTF-16'?>" + body).encode("utf-16-be"), "not UTF-8"),
        (body.encode("utf-16-le"), "not UTF-8"),
        (body.encode("utf-32"), "not UTF-8"),
        (b"\xfe\xff" + body.encode(), "not UTF-8"),
        (body.encode().replace(b"SASL-HMAC", b"SASL-HMAC\xff"), "not UTF-8"),
    ], start=10):
        outcome, sent = _first_answer(answer, n)
        assert isinstance(outcome, pht.PrebindError) and outcome.kind == "transport", (answer[:60], outcome)
        assert why in str(outcome) and len(sent) == 1, (answer[:60], outcome)


def test_utf8_declared_or_with_its_byte_order_mark_is_read():
    for n, answer in enumerate([b"<?xml version='1.0' encoding='UTF-8'?>" + _creation_answer(_FEATURES),
                                b"\xef\xbb\xbf" + _creation_answer(_FEATURES)], start=20):
        outcome, sent = _first_answer(answer, n)
        assert len(sent) == 2 and b"<auth " in sent[1], outcome  # it went on to the login


def test_a_utf8_entity_declaration_is_never_expanded():
    doc = "<!DOCTYPE body [<!ENTITY m 'SASL-HMAC'>]>" + _creation_answer(_FEATURES.replace("SASL-HMAC", "&m;")).decode()
    for n, answer in enumerate([doc.encode(), ("<?xml version='1.0'?>" + doc).encode(),
                                b"<!DOCTYPE body>" + _creation_answer(_FEATURES),
                                b"<!DOCTYPE body SYSTEM 'http://127.0.0.1:1/x.dtd'>" + _creation_answer(_FEATURES)], start=25):
        outcome, sent = _first_answer(answer, n)
        assert isinstance(outcome, pht.PrebindError) and outcome.kind == "transport", outcome
        assert "DOCTYPE" in str(outcome) and len(sent) == 1


def test_a_processing_instruction_or_comment_in_the_answer_is_refused():
    for n, answer in enumerate([_creation_answer("<?pi x?>" + _FEATURES), _creation_answer(_FEATURES + "<!-- x -->"),
                                _creation_answer(_FEATURES).replace(b"SASL-HMAC", b"SASL-<?x?>HMAC")], start=30):
        outcome, sent = _first_answer(answer, n)
        assert isinstance(outcome, pht.PrebindError) and outcome.kind == "transport", outcome
        assert len(sent) == 1


def test_a_mechanism_counts_only_as_a_child_of_mechanisms():
    for n, inner in enumerate([
        _FEATURES.replace("<mechanism>SASL-HMAC</mechanism>", "<x><mechanism>SASL-HMAC</mechanism></x>"),
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><x xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        "<mechanism>SASL-HMAC</mechanism></x></stream:features>",
    ], start=35):
        outcome, sent = _first_answer(_creation_answer(inner), n)
        assert isinstance(outcome, pht.PrebindError) and outcome.kind == "unproven", outcome
        assert len(sent) == 1


def test_http_is_for_loopback_only_unless_insecure_http():
    """Nothing authenticates the BOSH session itself: http:// elsewhere is refused before anything
    is sent (docs/prebind.md)."""
    for n, url in enumerate(["http://10.0.0.5/http-bind", "http://prosody.internal:5280/http-bind", "http://[::2]/",
                             "http://128.0.0.1/", "http://localhost.example/", "http://[::ffff:127.0.0.1]/"], start=40):
        outcome, sent = _first_answer(_creation_answer(_FEATURES), n, url=url)
        assert isinstance(outcome, pht.TokenError) and outcome.kind == "settings", (url, outcome)
        assert sent == [], url
    for n, (url, kwargs) in enumerate([
        ("http://10.0.0.5/http-bind", {"insecure_http": True}),
        ("https://10.0.0.5/http-bind", {}),
        ("http://127.0.0.1:5280/http-bind", {}),
        ("http://127.8.9.10/", {}),
        ("http://LOCALHOST:5280/http-bind", {}),
        ("http://[::1]:5280/http-bind", {}),
    ], start=50):
        outcome, sent = _first_answer(_creation_answer(_FEATURES), n, url=url, **kwargs)
        assert len(sent) == 2, (url, outcome)
    outcome, sent = _first_answer(_creation_answer(_FEATURES), 60, url="http://10.0.0.5/", insecure_http="yes")
    assert isinstance(outcome, pht.TokenError) and outcome.kind == "settings" and sent == []


def test_a_resource_that_is_not_utf8_is_refused_before_anything_is_sent():
    outcome, sent = _first_answer(_creation_answer(_FEATURES), 61, resource="web\ud800")
    assert isinstance(outcome, pht.TokenError) and outcome.kind == "settings" and sent == []


class _Server:
    """A local HTTP server, one thread per connection: `handle(conn, request body)`."""

    def __init__(self, handle):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d/http-bind" % self.sock.getsockname()[1]
        self.handle = handle
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(conn,), daemon=True).start()

    def one(self, conn):
        with conn:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
                while len(body) < length:
                    body += conn.recv(65536)
                self.handle(conn, body)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_the_timeout_bounds_the_whole_call_against_a_trickling_server():
    """A real server sending its answer a byte every 0.2 s (for 12 s at most): each read gets a byte
    well within the timeout, so only a deadline over the whole call ends it (in 1 s; the bound
    leaves a loaded machine 3 s to wake the call)."""

    def trickle(conn, body):
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b" " * 100000
        for i in range(60):
            conn.sendall(answer[i:i + 1])
            time.sleep(0.2)

    server = _Server(trickle)
    case = dict(_genuine(), token=_fresh(_genuine(), 62))
    started = time.monotonic()
    try:
        with pytest.raises(pht.PrebindError) as info:
            pht.prebind(server.url, case["jid"], case["token"], timeout=1)
    finally:
        server.close()
    took = time.monotonic() - started
    assert info.value.kind == "transport" and took < 4, (took, str(info.value))
    assert _hidden(info.value, case["token"])


def test_server_text_in_a_transport_error_is_not_repeated():
    """A server that answers the <auth/> with its SASL payload (the client-first message, holding
    the token's public part) as the status line, with a CR and an ANSI escape: none of it is in
    the message."""
    seen = []

    def echo(conn, body):
        seen.append(body)
        if len(seen) == 1:
            # HTTP/1.0, the body after the head: http.client closes the connection before it reads it
            answer = _creation_answer(_FEATURES)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer))
            time.sleep(0.1)
            conn.sendall(answer)
        else:
            payload = body.split(b"SASL-HMAC'>")[1].split(b"<")[0]
            conn.sendall(payload + b"\rFAKE\x1b[31m\r\n\r\n")

    server = _Server(echo)
    case = dict(_genuine(), token=_fresh(_genuine(), 63))
    try:
        with pytest.raises(pht.PrebindError) as info:
            pht.prebind(server.url, case["jid"], case["token"], timeout=5)
    finally:
        server.close()
    message = str(info.value)
    assert info.value.kind == "transport" and len(seen) == 2, message  # the <auth/> was sent
    payload = seen[1].split(b"SASL-HMAC'>")[1].split(b"<")[0].decode()
    assert len(payload) > 40
    assert payload[:16] not in message and "FAKE" not in message and all(" " <= c <= "~" for c in message), message
    assert _hidden(info.value, case["token"])


def test_a_transport_s_text_is_filtered():
    case = dict(_genuine(), token=_fresh(_genuine(), 65))

    def transport(data, left):
        raise OSError("\x1b[31mred\r\nline")

    with pytest.raises(pht.PrebindError) as info:
        pht.prebind(URL, case["jid"], case["token"], transport=transport)
    assert "\x1b" not in str(info.value) and "\r" not in str(info.value) and "red" in str(info.value)
