#!/usr/bin/python3
"""A tiny web app that does what Plone + collective.converse does for chat: it serves a converse.js
page and a credentials_url endpoint that mints a token for the user, in process, with the Python
minting library (clients/python).

What a real web app must do too (README, "Minting in your web app"), this one does: credentials_url
and prebind_url mint only for the user of the web session (a cookie set at /login, SameSite=Strict,
HttpOnly), refuse requests another site started (`Sec-Fetch-Site` other than same-origin), and
mint at most `rate_limit` tokens per user in `rate_window` seconds (HTTP 429 beyond), well under
Prosody's per-account quota (token_replay_user_quota = 100 within a token's 60-150 s life), so
neither a script nor another site's page can spend a user's quota and lock the user out. Both
answer GET only, with `Cache-Control: no-store`. Unlike a real app, /login?user=NAME&next=/PATH
signs anybody in by name, without a password: it is a demo.

A POST to /logout ends the web session and signs the user out of the chat with the Python library's
`signout` (docs/signout.md): Prosody ends every chat session of the user and refuses the tokens
handed out before. A real web app calls it on logout, on account lock and on password reset.

/prebind opens a BOSH session with a token over SASL-HMAC (prosody_hmac_token.prebind) for converse's
`authentication: 'prebind'`. Nothing here is for tests only: the browser tests' fake web app
(bad, replayed and expired tokens, an endpoint that goes down, impostor BOSH servers) is a
subclass of this one in tests/integration/fake_webapp.py.

    app = WebApp(port, prosody_domain, bosh_url, websocket_url, token_secret, otp_seed); app.start()
    # signout_url: Prosody's sign-out endpoint; by default /auth_hmac/signout beside prebind's BOSH URL
    app.page_url("alice", transport="bosh")  # logs the browser in as alice, then opens the page
"""
import atexit
import functools
import json
import logging
import mimetypes
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
import prosody_hmac_token  # noqa: E402  (in a real web app: its built wheel, pip-installed into the venv)
CONVERSE_PLUGINS = "prosody-auth-hmac-converse"  # clients/converse, as an npm package
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")
logger = logging.getLogger("webapp")


_install_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _install_converse_plugins():
    root = Path(tempfile.mkdtemp(prefix="webapp-root-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "npmrc").write_text("")
    # npm with an empty user configuration and its own cache: no ~/.npmrc, no registry
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith(("npm_", "node_"))}
    env.update(npm_config_userconfig=str(root / "npmrc"), npm_config_cache=str(root / "npm-cache"),
               npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")

    def npm(cwd, *args):
        r = subprocess.run(["npm", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("npm %s: exit %d\n%s" % (" ".join(args), r.returncode, r.stderr[-2000:]))

    npm(REPO / "clients" / "converse", "pack", "--pack-destination", str(root))
    (tarball,) = root.glob(CONVERSE_PLUGINS + "-*.tgz")
    (root / "package.json").write_text(json.dumps({"name": "chat-page", "version": "1.0.0", "private": True}))
    npm(root, "install", "--offline", "--ignore-scripts", str(tarball))
    return root


def installed_converse_plugins():
    """A web root where the converse.js plugins are installed the way a deployer installs them
    (clients/converse/README.md): `npm pack` of clients/converse, then `npm install --offline` of
    that tarball, so the page runs the packed files (`files`, `exports`), not the checkout's. Once
    per process; removed at exit. Returns the root; the web app serves its node_modules/."""
    with _install_lock:
        return _install_converse_plugins()


class WebApp:
    def __init__(self, port, domain, bosh_url, websocket_url, token_secret, otp_seed, prebind_bosh_url=None,
                 signout_url=None):
        self.port, self.domain = port, domain
        self.prebind_bosh_url = prebind_bosh_url or bosh_url  # Prosody's own endpoint, not the public one
        # Prosody's sign-out endpoint (token_signout = true), on Prosody's own HTTP port: never one
        # the reverse proxy exposes
        self.signout_url = signout_url or urllib.parse.urljoin(self.prebind_bosh_url, "/auth_hmac/signout")
        self.config = {"domain": domain, "bosh_url": bosh_url, "websocket_url": websocket_url}
        self.token_secret, self.otp_seed = token_secret, otp_seed
        self.sessions = {}  # session cookie -> user
        # Tokens per user per window: 20 a minute is at most 60 in the 150 s a quota entry can live,
        # under the server's quota of 100, and far above a person's logins with reloads and drops
        self.rate_limit, self.rate_window = 20, 60.0
        self.clock = time.monotonic  # the rate limit's clock (tests replace it)
        self._minted = {}  # user -> clock() of the tokens minted within the window
        self._lock = threading.Lock()
        self.static = {"/converse/": REPO / ".converse"}  # converse.js's browser build, as scripts/get-converse.sh fetched it
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                app.handle(self)

            def do_POST(self):
                app.handle_post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def page_url(self, user, base=None, **params):
        """The chat page with `params`, reached through /login as `user` (a browser needs a web
        session before credentials_url or prebind_url answers)."""
        page = "/?" + urllib.parse.urlencode(params)
        return (base or self.url) + "login?" + urllib.parse.urlencode({"user": user, "next": page})

    def start(self):
        self.static["/node_modules/"] = installed_converse_plugins() / "node_modules"
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def mint(self, user):
        """The login for `user`: {"jid", "password"}, the token signed for the bare JID."""
        return prosody_hmac_token.credentials("%s@%s" % (user, self.domain), self.token_secret, self.otp_seed)

    def handle(self, req):
        url = urllib.parse.urlsplit(req.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path in ("/", "/index.html"):
            return self.send(req, 200, (Path(__file__).parent / "index.html").read_bytes(), "text/html; charset=utf-8")
        if url.path == "/config.json":
            return self.send(req, 200, json.dumps(self.config).encode(), "application/json")
        if url.path == "/login":
            return self.login(req, query)
        if url.path in ("/credentials", "/prebind"):
            # An endpoint that hands out a login: only to a page of this site (browsers send
            # Sec-Fetch-Site; converse's XHR is same-origin) and only for the web session's user
            if req.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                return self.send(req, 403, b"cross-site request", "text/plain")
            user = self.session_user(req)
            if user is None:
                return self.send(req, 401, b"not logged in", "text/plain")
            return self.hand_out(req, url.path, user, query)
        path = self.static_file(url.path)
        if path is not None:
            ctype = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
            return self.send(req, 200, path.read_bytes(), ctype)
        return self.send(req, 404, b"not found", "text/plain")

    def handle_post(self, req):
        """POST /logout; nothing else takes a POST (credentials_url and prebind_url are GETs: converse
        fetches them so)."""
        req.rfile.read(int(req.headers.get("Content-Length") or 0))
        if urllib.parse.urlsplit(req.path).path == "/logout":
            return self.logout(req)
        return self.send(req, 404, b"not found", "text/plain")

    def logout(self, req):
        """POST /logout: ends the web session and signs its user out of the chat. A POST (never a
        GET: a link or an <img> must not log anybody out), from a page of this site only."""
        if req.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return self.send(req, 403, b"cross-site request", "text/plain")
        cookie = self.session_cookie(req)
        with self._lock:
            user = self.sessions.pop(cookie, None)
        if user is not None:
            self.signout(user)
        return self.send(req, 303, b"", "text/plain", extra={
            "Location": "/", "Set-Cookie": "chat_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"})

    def signout(self, user):
        """Signs `user` out of the chat: every chat session ends, and the tokens handed out before
        are refused. The web logout happens whatever Prosody answers; a failure is logged (the
        library's messages never hold the request, which is valid for 60 s). True if accepted."""
        jid = prosody_hmac_token.signed_jid("%s@%s" % (user, self.domain))  # the account the tokens are for
        try:
            prosody_hmac_token.signout(self.signout_url, jid, self.token_secret)
        except (prosody_hmac_token.SignoutError, prosody_hmac_token.TokenError) as e:
            logger.warning("chat sign-out for %s failed (%s): %s", jid, e.kind, e)
            return False
        logger.info("chat sign-out for %s: accepted", jid)
        return True

    def hand_out(self, req, path, user, query):
        """/credentials or /prebind for `user`, the web session's: a token, within the rate limit."""
        if not self.allow(user):
            self.log(user, query, "rate-limited")
            return self.send(req, 429, b"too many chat sign-ins; try again later", "text/plain",
                             extra={"Retry-After": str(int(self.rate_window))})
        body = self.credentials(user, query)
        if path == "/prebind":
            try:
                body = self.prebind(body["jid"], body["password"])
            except (prosody_hmac_token.PrebindError, prosody_hmac_token.TokenError) as e:
                self.log(user, query, "prebind failed (%s): %s" % (e.kind, e))
                return self.send(req, 502, b"could not open a chat session", "text/plain")
        self.log(user, query, "ok")
        # no-store: a token (or a session's rid) kept by a cache could be handed out again
        return self.send(req, 200, json.dumps(body).encode(), "application/json", extra={"Cache-Control": "no-store"})

    def prebind(self, jid, token):
        """A BOSH session for `jid`, logged in with `token` over SASL-HMAC: {jid, sid, rid}."""
        return prosody_hmac_token.prebind(self.prebind_bosh_url, jid, token)

    def credentials(self, user, query):
        """What credentials_url answers for `user` (the request's query plays no part here)."""
        return self.mint(user)

    def log(self, user, query, outcome):
        """One line per credentials or prebind request; never the token."""
        logger.info("chat sign-in for %s: %s", user, outcome)

    def static_file(self, url_path):
        """The file under a static root that `url_path` names, or None (nothing outside the roots)."""
        for prefix, root in self.static.items():
            if url_path.startswith(prefix):
                path = (root / url_path[len(prefix):]).resolve()
                if root.resolve() in path.parents and path.is_file():
                    return path
        return None

    def login(self, req, query):
        """/login?user=NAME&next=/PATH: the demo's login view (a real one checks a password). Not
        from another site's page or link, so no site can sign a visitor in as someone else."""
        user, target = query.get("user", ""), query.get("next", "/")
        if req.headers.get("Sec-Fetch-Site", "none") not in ("same-origin", "none"):
            return self.send(req, 403, b"cross-site request", "text/plain")
        if not (user.isascii() and user.isalnum()):
            return self.send(req, 400, b"bad user", "text/plain")
        if not re.fullmatch(r"/(?![/\\])[!-~]*", target):
            # only a path of this site, printable ASCII: browsers read //host, /\host and a path
            # with a tab or line end dropped (/<TAB>/host) as another site
            target = "/"
        cookie = secrets.token_urlsafe(32)
        with self._lock:
            self.sessions[cookie] = user
        # SameSite=Strict: a browser sends it with no request another site started
        return self.send(req, 303, b"", "text/plain", extra={
            "Location": target, "Set-Cookie": "chat_session=%s; Path=/; HttpOnly; SameSite=Strict" % cookie})

    def session_cookie(self, req):
        """The request's web session cookie, if it names a session, else None."""
        for part in (req.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "chat_session":
                with self._lock:
                    if value in self.sessions:
                        return value
        return None

    def session_user(self, req):
        """The user of the request's web session, or None."""
        cookie = self.session_cookie(req)
        with self._lock:
            return self.sessions.get(cookie)

    def allow(self, user):
        """Whether `user` may have another token now; counts it if so (a sliding window)."""
        now = self.clock()
        user = user.lower()  # one XMPP account however the name was typed at /login (tokens sign it lower-cased)
        with self._lock:
            recent = [t for t in self._minted.get(user, []) if now - t < self.rate_window]
            if len(recent) >= self.rate_limit:
                self._minted[user] = recent
                return False
            self._minted[user] = recent + [now]
            return True

    @staticmethod
    def send(req, status, body, ctype, extra=None):
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(body)
