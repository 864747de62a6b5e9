"""prosody_hmac_token.prebind (docs/prebind.md) against the scripted servers of
tests/vectors/prebind.json, through a fake transport that checks every request the client makes.

Run: /usr/bin/python3 -m pytest -q clients/python/tests
"""
import json
import pathlib
import sys
import xml.etree.ElementTree as ET

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # the package, without installing it

import prosody_hmac_token as pht  # noqa: E402

VECTORS = json.loads((HERE.parent.parent.parent / "tests" / "vectors" / "prebind.json").read_text(encoding="utf-8"))
NS_BOSH = "{http://jabber.org/protocol/httpbind}"
NS_SASL = "{urn:ietf:params:xml:ns:xmpp-sasl}"


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
        return step.get("status", 200), step["response"].encode("utf-8")


def run(case):
    fake = Fake(case)
    try:
        outcome = pht.prebind("http://127.0.0.1:1/http-bind", case["jid"], case["token"], transport=fake)
    except pht.PrebindError as e:
        outcome = e
    return fake, outcome


def _hidden(exc, token):
    public, mac = token.split(" ")
    text = str(exc) + repr(exc) + repr(exc.args)
    return public not in text and mac not in text and mac[:20] not in text


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
        pht.prebind("http://x/", case["jid"], case["token"], transport=fake)
    fake2 = Fake(case)
    with pytest.raises(pht.TokenError) as info:
        pht.prebind("http://x/", case["jid"], case["token"], transport=fake2)
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
        (case["jid"], _fresh(case, 6).split(" ")[0] + " " + "A" * 42 + "B=", "token"),  # not canonical
        (case["jid"], None, "token"),
    ]:
        with pytest.raises(pht.TokenError) as info:
            pht.prebind("http://x/", jid, token, transport=fake)
        assert info.value.kind == kind, (jid, token, info.value)
    for kwargs in [{"timeout": 0}, {"timeout": 601}, {"timeout": float("nan")}, {"resource": ""},
                   {"resource": "a\nb"}, {"transport": "not callable"}]:
        with pytest.raises(pht.TokenError) as info:
            pht.prebind("http://x/", case["jid"], _fresh(case, 2), **dict({"transport": fake}, **kwargs))
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
        pht.prebind("http://x/", case["jid"], case["token"], timeout=7, transport=slow)
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
        pht.prebind("http://x/", case["jid"], case["token"], timeout=2.5, transport=record)
    assert info.value.kind == "transport" and sent[0].get("wait") == "3"

