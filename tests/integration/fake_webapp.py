"""The browser tests' web app: the example (examples/webapp/app.py) and what only tests need. It
can hand out deliberately bad, replayed or expired tokens and tokens of another otp_seed (the
page's `scenario` parameter), go "down", hold an answer back, and serve impostor BOSH endpoints that do
not hold the token secret, so the tests can see how converse.js and the token-reconnect plugin
handle each; it records what it handed out, served and was sent. Never for a deployment."""
import base64
import os
import time
import urllib.parse
from collections import Counter
from itertools import count

from app import WebApp, prosody_hmac_token
import prebind_runners


class FakeWebApp(WebApp):
    IMPOSTOR_BODY = ("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' "
                     "xmlns:stream='http://etherx.jabber.org/streams' sid='impostor' wait='10' requests='2' "
                     "hold='1' xmpp:version='1.0' from='%s'>%s</body>")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.issued = {}  # user -> last token (for the "replay" scenario)
        self.issued_log = {}  # user -> every token handed out, in order
        self.used = {}  # user -> tokens used elsewhere already, for the "replay" scenario to hand out
        self.requests = []  # credentials and prebind requests: (user, scenario, time.monotonic(), outcome)
        self.down = False  # True: credentials_url fails (HTTP 503, a body that is not JSON, a dropped connection)
        self._down_kinds = count()
        self.clock_offset = -3600  # the "expired" scenario: a web app whose clock is an hour behind
        self.other_seed = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"  # the "seed" scenario: a web app with another otp_seed
        self.fixed_now = None  # a Unix time to mint every token at (tests: many tokens in one OTP step)
        # None, or an Event credentials_url waits for before it answers (at most a minute): a request the
        # test holds open until it has acted, however slow the machine
        self.hold = None
        self.answering = Counter()  # user -> credentials_url requests being answered now (slow)
        self.impostor_log = []  # what the impostor BOSH endpoint was sent
        self.impostor_sessions = Counter()  # impostor path -> BOSH sessions opened on it
        self.impostor_bodies = []  # every request body the PLAIN-only impostor received
        self.served = []  # the paths of the static files served, in order
        self.locked = set()  # users whose credentials_url answers 403 (an account the site has locked)
        self.prebind_lang = "python"  # the minting library whose prebind opens the sessions: python, node or php
        self.prebound = []  # (language, session) of every session prebind opened

    def mint(self, user, offset=0):
        now = int(self.fixed_now or time.time()) + offset
        return prosody_hmac_token.credentials("%s@%s" % (user, self.domain), self.token_secret, self.otp_seed, now=now)

    def prebind(self, jid, token):
        """The session from the library of `prebind_lang`: Python's in this process, Node's and
        PHP's run in their own (prebind_runners.py)."""
        if self.prebind_lang == "python":
            session = super().prebind(jid, token)
        else:
            session = prebind_runners.prebind(self.prebind_lang, self.prebind_bosh_url, jid, token)
        self.prebound.append((self.prebind_lang, session))
        return session

    def hand_out(self, req, path, user, query):
        if self.down:  # before the rate limit, as a web app that is down counts nothing
            return self.fail(req, user, query)
        if user in self.locked:  # the web session is still there, the account is not: no token
            self.log(user, query, "403")
            return self.send(req, 403, b"account locked", "text/plain")
        return super().hand_out(req, path, user, query)

    def sign_out(self, user):
        """Signs `user` out of the chat as the example's logout does (the Python library's
        `signout`), at `fixed_now` if set: Prosody checks the request's time against its token
        clock, which the tests pin. Raises if Prosody does not accept it (the example only logs)."""
        jid = prosody_hmac_token.signed_jid("%s@%s" % (user, self.domain))
        prosody_hmac_token.signout(self.signout_url, jid, self.token_secret,
                                   now=int(self.fixed_now) if self.fixed_now else None)

    def credentials(self, user, query):
        """credentials_url's answer (after the rate limit), once `hold` (if any) is set, for the page's
        `scenario`."""
        self.answering[user] += 1
        try:
            hold = self.hold
            if hold is not None:
                hold.wait(60)
        finally:
            self.answering[user] -= 1
        return self.scenario_credentials(user, query.get("scenario", "good"))

    def scenario_credentials(self, user, scenario):
        """The login `scenario` hands out: good, bad, badonce, replay, reused, expired or seed."""
        if scenario == "replay" and self.used.get(user):
            body = {"jid": "%s@%s" % (user, self.domain), "password": self.used[user].pop(0)}
        elif scenario in ("replay", "reused") and user in self.issued:  # the same token again
            body = self.issued[user]
        else:
            body = self.mint(user)
            if scenario == "bad" or (scenario == "badonce" and user not in self.issued):
                # a forged token: right shape, wrong signature
                public, mac = body["password"].split(" ")
                body["password"] = public + " " + ("A" if mac[0] != "A" else "B") + mac[1:]
            elif scenario == "expired":
                body = self.mint(user, self.clock_offset)
            elif scenario == "seed":
                now = int(self.fixed_now or time.time())
                body = prosody_hmac_token.credentials("%s@%s" % (user, self.domain), self.token_secret, self.other_seed,
                                                      now=now)
        self.issued[user] = body
        self.issued_log.setdefault(user, []).append(body["password"])
        return body

    def log(self, user, query, outcome):
        self.requests.append((user, query.get("scenario", "good"), time.monotonic(), outcome))

    def static_file(self, url_path):
        path = super().static_file(url_path)
        if path is not None:
            self.served.append(url_path)
        return path

    def fail(self, req, user, query):
        """The web app is down: in turn a 503, a 200 with an HTML error page, a dropped connection."""
        kind = next(self._down_kinds) % 3
        self.log(user, query, ("503", "html", "dropped")[kind])
        if kind == 0:
            return self.send(req, 503, b"Service Unavailable", "text/plain")
        if kind == 1:
            return self.send(req, 200, b"<html><body>Maintenance</body></html>", "text/html")
        req.close_connection = True
        req.connection.shutdown(2)

    def handle_post(self, req):
        """/impostor-bosh: a BOSH endpoint that does not hold the token secret. It offers
        SASL-HMAC, accepts any proof and answers success with a server proof it made up, for the
        test that the browser client refuses such a server."""
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length).decode("utf-8", "replace")
        path = urllib.parse.urlsplit(req.path).path
        if path in ("/impostor-plain-bosh", "/impostor-iqauth-bosh"):
            return self.plain_impostor(req, body, offer_plain=path == "/impostor-plain-bosh")
        if path in ("/impostor-tempfail-bosh", "/impostor-drop-bosh"):
            return self.stalling_impostor(req, body, drop=path == "/impostor-drop-bosh")
        if path != "/impostor-bosh":
            return self.send(req, 404, b"not found", "text/plain")
        features = ("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                    "<mechanism>SASL-HMAC</mechanism></mechanisms></stream:features>")
        sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
        if "sid=" not in body:
            self.impostor_log.append("session")
            self.impostor_sessions[path] += 1
            inner = features
        elif "<auth" in body:
            self.impostor_log.append("auth")
            inner = "<challenge xmlns='%s'>%s</challenge>" % (sasl, base64.b64encode(os.urandom(24)).decode())
        elif "<response" in body:
            self.impostor_log.append("response")
            inner = "<success xmlns='%s'>%s</success>" % (sasl, base64.b64encode(os.urandom(32)).decode())
        elif "restart" in body:
            self.impostor_log.append("restart")  # a client that got here believed the impostor
            inner = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
        else:
            time.sleep(0.5)
            inner = ""
        return self.send(req, 200, (self.IMPOSTOR_BODY % (self.domain, inner)).encode(), "text/xml; charset=utf-8")

    def stalling_impostor(self, req, body, drop):
        """/impostor-tempfail-bosh answers every <auth/> with temporary-auth-failure;
        /impostor-drop-bosh ends the session when it gets one. Neither ever lets a client in: the
        tests check how many tokens a page spends on them."""
        self.impostor_log.append("auth" if "<auth" in body else "session" if "sid=" not in body else "other")
        sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
        if "sid=" not in body:
            self.impostor_sessions[urllib.parse.urlsplit(req.path).path] += 1
            inner = ("<stream:features><mechanisms xmlns='%s'><mechanism>SASL-HMAC</mechanism>"
                     "<mechanism>PLAIN</mechanism></mechanisms></stream:features>" % sasl)
        elif "<auth" in body and drop:
            body = ("<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' "
                    "condition='remote-stream-error'/>")
            return self.send(req, 200, body.encode(), "text/xml; charset=utf-8")
        elif "<auth" in body:
            inner = "<failure xmlns='%s'><temporary-auth-failure/></failure>" % sasl
        else:
            time.sleep(0.5)
            inner = ""
        return self.send(req, 200, (self.IMPOSTOR_BODY % (self.domain, inner)).encode(), "text/xml; charset=utf-8")

    def plain_impostor(self, req, body, offer_plain):
        """/impostor-plain-bosh: offers only PLAIN and XEP-0078 legacy login; /impostor-iqauth-bosh:
        only legacy login. Either takes any password and records every body: the tests check the
        token never arrives."""
        self.impostor_bodies.append(body)
        sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
        if "sid=" not in body:
            plain = "<mechanisms xmlns='%s'><mechanism>PLAIN</mechanism></mechanisms>" % sasl if offer_plain else ""
            inner = ("<stream:features>%s<auth xmlns='http://jabber.org/features/iq-auth'/></stream:features>" % plain)
        elif "<auth" in body:
            inner = "<success xmlns='%s'/>" % sasl
        elif "jabber:iq:auth" in body and "type='get'" in body.replace('"', "'"):
            inner = ("<iq xmlns='jabber:client' type='result' id='_auth_1'><query xmlns='jabber:iq:auth'>"
                     "<username/><password/><resource/></query></iq>")
        elif "jabber:iq:auth" in body:
            inner = "<iq xmlns='jabber:client' type='result' id='_auth_2'/>"
        else:
            time.sleep(0.5)
            inner = ""
        return self.send(req, 200, (self.IMPOSTOR_BODY % (self.domain, inner)).encode(), "text/xml; charset=utf-8")
