"""The example web app's credentials_url and prebind_url (examples/webapp/app.py), as a deployer copies
them: a token only for the user of the web session, never for a request another site started,
and at most `rate_limit` tokens per user per `rate_window`, so that neither a script nor another
site's page can spend the user's per-account quota on the server (token_replay_user_quota) and
lock the user out. The rate limit's clock is the app's `clock`, replaced here: nothing waits."""
import http.cookiejar
import http.server
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import pytest

import prosody_hmac_token
import rawxmpp
from app import WebApp
from harness import free_port
from logins import plain



class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


class CountingWebApp(WebApp):
    """The example, counting the tokens it mints per user (its behaviour unchanged)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.minted = Counter()

    def credentials(self, user, query):
        self.minted[user] += 1
        return super().credentials(user, query)


@pytest.fixture
def app(prosody):
    a = CountingWebApp(free_port(), prosody.host, prosody.bosh_url, prosody.ws_url, prosody.token_secret,
               prosody.otp_seed).start()
    yield a
    a.stop()


def request(opener, url, sec_fetch_site="same-origin"):
    """(status, headers, body); Sec-Fetch-Site as Chromium sends it (None: a client that sends none)."""
    headers = {"Accept": "application/json, text/javascript"}
    if sec_fetch_site:
        headers["Sec-Fetch-Site"] = sec_fetch_site
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def browser(app, user):
    """An opener holding `user`'s web session, as a browser after the web app's login page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    request(opener, app.page_url(user), "none")  # typed into the address bar
    return opener


def test_no_token_without_the_web_session(app):
    anonymous = urllib.request.build_opener()
    for path in ("credentials", "prebind"):
        for query in ("", "?user=alice"):
            status, _, body = request(anonymous, app.url + path + query)
            assert status == 401, (path, query, status, body[:200])
    assert not app.minted
    forged = urllib.request.build_opener()
    forged.addheaders = [("Cookie", "chat_session=" + "A" * 43)]
    assert request(forged, app.url + "credentials")[0] == 401


def test_the_session_not_the_query_names_the_user(app, prosody):
    status, _, body = request(browser(app, "carla"), app.url + "credentials?user=alice")
    assert status == 200, body[:200]
    assert json.loads(body)["jid"] == "carla@%s" % prosody.host
    assert "alice" not in app.minted


def test_no_token_for_a_request_another_site_started(app):
    opener = browser(app, "dora")
    for fetch_site in ("cross-site", "same-site"):
        status, _, body = request(opener, app.url + "credentials", fetch_site)
        assert status == 403, (fetch_site, status, body[:200])
        assert request(opener, app.url + "prebind", fetch_site)[0] == 403
    assert "dora" not in app.minted
    # converse's XHR from the page itself; a client that sends no Sec-Fetch-Site has no cookie jar
    # another site could use
    assert request(opener, app.url + "credentials", "same-origin")[0] == 200
    assert request(opener, app.url + "credentials", None)[0] == 200


def test_login_sets_a_strict_cookie_and_refuses_other_sites(app):
    opener = urllib.request.build_opener(NoRedirect)
    status, headers, _ = request(opener, app.page_url("erin", transport="bosh"), "none")
    assert status == 303 and headers["Location"] == "/?transport=bosh", (status, dict(headers))
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    # another site's page (a link, a form, an <img>) cannot sign the visitor in as someone else
    for fetch_site in ("cross-site", "same-site"):
        assert request(opener, app.page_url("mallory"), fetch_site)[0] == 403
    # and /login sends nobody elsewhere
    for target in ("//evil.example/", "/\\evil.example/", "https://evil.example/",
                   "/\t/evil.example/", "/\n/evil.example/"):  # browsers drop the tab or line end
        url = app.url + "login?" + urllib.parse.urlencode({"user": "erin", "next": target})
        status, headers, _ = request(opener, url, "none")
        assert (status, headers["Location"]) == (303, "/"), target
    assert request(opener, app.url + "login?user=a%40b", "none")[0] == 400


def test_rate_limit_per_user(app):
    now = [1000.0]
    app.clock = lambda: now[0]
    app.rate_limit, app.rate_window = 5, 60.0
    frank, grace = browser(app, "frank"), browser(app, "grace")
    statuses = [request(frank, app.url + "credentials")[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429], statuses
    status, headers, _ = request(frank, app.url + "credentials")
    assert status == 429 and headers["Retry-After"] == "60"
    assert app.minted["frank"] == 5  # refused requests mint nothing
    assert request(grace, app.url + "credentials")[0] == 200  # another user is not held back
    # nor is the limit a session's: a new login shares it, also under another spelling of the name
    for spelling in ("frank", "FRANK", "Frank"):
        assert request(browser(app, spelling), app.url + "credentials")[0] == 429, spelling
    now[0] += 59.9
    assert request(frank, app.url + "credentials")[0] == 429
    now[0] += 0.2  # a minute after the first five
    assert [request(frank, app.url + "credentials")[0] for _ in range(6)] == [200] * 5 + [429]


def test_a_burst_of_prebind_gets_cannot_lock_the_user_out(app, prosody):
    """Security round four: 100 GETs of prebind_url for one user (3.4 s) opened 100 BOSH sessions,
    each a SASL-HMAC login that used one of the user's token_replay_user_quota = 100 replay-cache
    entries, and the user's next logins were refused (temporary-auth-failure) for 90-150 s. Now
    the GETs need the user's session (here the attacker has it: the worst case) and get
    `rate_limit` sessions; the user still logs in with a fresh token."""
    user = "burst"
    opener = browser(app, user)
    statuses = [request(opener, app.url + "prebind?user=" + user)[0] for _ in range(100)]
    token = app.mint(user)["password"]  # what the user's own page gets next from the web app
    r = rawxmpp.C2S(prosody.c2s_port, prosody.host).auth("PLAIN", plain(user, token))
    assert (r.status, r.condition) == ("success", None), (r.status, r.condition, statuses)
    assert statuses.count(200) == app.rate_limit and statuses.count(429) == 100 - app.rate_limit, statuses
    assert app.rate_limit * (150 // app.rate_window + 1) < 100  # the most one window lets through in 150 s


def test_the_example_serves_nothing_only_tests_need(app, prosody):
    """The fake web app's scenarios and impostor BOSH endpoints (tests/integration/fake_webapp.py)
    stay out of the example deployers copy: every token it hands out is a good one, a fresh one
    per request, whatever the page asks for, and it has no impostor endpoint."""
    opener = browser(app, "quinn")
    tokens = {}
    for scenario in ("bad", "badonce", "replay", "reused", "expired", "seed", "down", "good"):
        status, headers, body = request(opener, app.url + "credentials?scenario=" + scenario)
        assert status == 200 and headers["Cache-Control"] == "no-store", (scenario, status, body[:200])
        tokens[scenario] = json.loads(body)["password"]
    assert len(set(tokens.values())) == len(tokens), "a token handed out twice"
    for scenario in ("bad", "replay", "expired", "seed"):
        token = tokens[scenario]
        r = rawxmpp.C2S(prosody.c2s_port, prosody.host).auth("PLAIN", plain("quinn", token))
        assert (r.status, r.condition) == ("success", None), (scenario, r.status, r.condition)
    for path in ("impostor-bosh", "impostor-plain-bosh", "impostor-iqauth-bosh", "impostor-tempfail-bosh",
                 "impostor-drop-bosh"):
        body = b"<body rid='1' xmlns='http://jabber.org/protocol/httpbind' to='%s'/>" % prosody.host.encode()
        post = urllib.request.Request(app.url + path, data=body, headers={"Content-Type": "text/xml"})
        try:
            status = opener.open(post, timeout=30).status
        except urllib.error.HTTPError as e:
            status = e.code
        assert status == 404, (path, status)
        assert request(opener, app.url + path)[0] == 404, path
    for name in ("down", "slow", "fixed_now", "impostor_log", "issued_log", "requests", "served"):
        assert not hasattr(app, name), name


class StandInSignout:
    """Prosody's sign-out endpoint as the web app sees it: records each POST, answers `status`."""

    def __init__(self, status=200):
        self.status, self.requests = status, []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                stand_in.requests.append((self.path, self.headers.get("Host"), self.headers.get("Content-Type"), body))
                self.send_response(stand_in.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/auth_hmac/signout" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint(app):
    stand_in = StandInSignout()
    app.signout_url = stand_in.url
    yield stand_in
    stand_in.close()


def logout(opener, app, sec_fetch_site="same-origin"):
    headers = {"Sec-Fetch-Site": sec_fetch_site} if sec_fetch_site else {}
    try:
        with NoRedirectOpener(opener).open(urllib.request.Request(app.url + "logout", data=b"", headers=headers),
                                           timeout=30) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def NoRedirectOpener(opener):
    """`opener`'s cookies, without following the answer's redirect."""
    jar = next(h.cookiejar for h in opener.handlers if isinstance(h, urllib.request.HTTPCookieProcessor))
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)


def test_logout_ends_the_web_session_and_signs_the_user_out(app, endpoint, prosody):
    opener = browser(app, "Rita")
    assert request(opener, app.url + "credentials")[0] == 200
    status, headers = logout(opener, app)
    assert status == 303 and headers["Location"] == "/", status
    assert "Max-Age=0" in headers["Set-Cookie"]
    (path, host, ctype, body), = endpoint.requests
    jid = "rita@%s" % prosody.host  # the account the tokens were signed for
    assert (path, host, ctype) == ("/auth_hmac/signout", prosody.host, "text/plain")
    version, time, nonce, signed, _ = body.split(" ")
    assert (version, signed) == ("v1", jid)
    assert body == prosody_hmac_token.signout_request(jid, prosody.token_secret, now=int(time), nonce=nonce)
    # the web session is gone: no more tokens for it, and logging out again signs nobody out
    assert request(opener, app.url + "credentials")[0] == 401
    assert logout(opener, app)[0] == 303
    assert len(endpoint.requests) == 1


def test_a_failed_signout_is_logged_without_the_request(app, endpoint, caplog):
    endpoint.status = 403
    opener = browser(app, "sam")
    with caplog.at_level(logging.INFO, logger="webapp"):
        assert logout(opener, app)[0] == 303
    (_, _, _, body), = endpoint.requests
    failures = [r for r in caplog.records if r.name == "webapp" and r.levelno == logging.WARNING]
    assert len(failures) == 1 and "refused" in failures[0].getMessage(), [r.getMessage() for r in caplog.records]
    for record in caplog.records:
        assert body.split(" ")[4] not in record.getMessage() and body.split(" ")[2] not in record.getMessage()
    assert request(opener, app.url + "credentials")[0] == 401  # the web logout happened all the same


def test_no_logout_from_another_site(app, endpoint):
    opener = browser(app, "tess")
    for fetch_site in ("cross-site", "same-site"):
        assert logout(opener, app, fetch_site)[0] == 403
    assert endpoint.requests == []
    assert request(opener, app.url + "credentials")[0] == 200
    # and a GET does nothing (a link or an <img> must not log anybody out)
    assert request(opener, app.url + "logout")[0] == 404
    assert endpoint.requests == []


def test_the_signout_url_defaults_to_prosodys_own_port(app, prosody):
    assert app.signout_url == "http://127.0.0.1:%d/auth_hmac/signout" % urllib.parse.urlsplit(prosody.bosh_url).port
