"""The Flask credentials endpoint of clients/python/README.md, run as written: the fenced block is
read from the README (never copied), served by Debian's Flask on 127.0.0.1, its secrets in files
named by environment variables as the README tells a deployer. A GET the way converse.js sends it
gets a token that logs in to the live Prosody once; a request without the user's web session or
from another site gets none, nor a 21st within a minute for one user; and converse.js in Chromium
(the README's recommended page) logs in through it. Only what the example leaves to the web app is added around it: a login view that sets
`session["username"]`, and the page with converse.js."""
import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import rawxmpp
from app import installed_converse_plugins
from browser import Browser
from harness import REPO, free_port, listening, stop_process
from logins import plain


LIBRARY_README = REPO / "clients" / "python" / "README.md"
README = REPO / "README.md"

# Around the example: the web app's own login view, the chat page and the files it loads.
SERVE = r'''
import sys
from pathlib import Path

from flask import redirect, send_from_directory, session

from example import app  # clients/python/README.md's Flask example, as written

REPO = Path(sys.argv[2])
PAGE = Path("page.html").read_text()


@app.get("/login/<user>")
def login(user):  # the web app's login view
    session["username"] = user
    return redirect("/chat/")


@app.get("/chat/")
def chat():
    return PAGE


@app.get("/dist/<path:name>")
def dist(name):
    return send_from_directory(REPO / ".converse" / "dist", name)


@app.get("/node_modules/<path:name>")
def plugins(name):  # the plugins' package, installed from its tarball (README "converse.js in five minutes")
    return send_from_directory(Path(sys.argv[3]) / "node_modules", name)


app.run(host="127.0.0.1", port=int(sys.argv[1]))
'''


def fenced(text, lang, needle):
    blocks = [b for b in re.findall(r"^```%s\n(.*?)^```" % lang, text, flags=re.M | re.S) if needle in b]
    assert len(blocks) == 1, "expected one %s block with %r, found %d" % (lang, needle, len(blocks))
    return blocks[0]


def converse_page(ws_url):
    """The README's recommended converse.js configuration, pointed at this Prosody and this endpoint."""
    script = fenced(README.read_text(), "html", "addTokenReconnect(converse)")
    for key, value in (("credentials_url", "/xmpp/credentials"), ("websocket_url", ws_url)):
        script, n = re.subn(r"%s: '[^']*'" % key, "%s: '%s'" % (key, value), script)
        assert n == 1, "README's converse.js configuration has no single %s" % key
    return '<!doctype html>\n<meta charset="utf-8">\n<link rel="stylesheet" href="/dist/converse.min.css">\n' + script


@pytest.fixture(scope="module")
def site(prosody, tmp_path_factory):
    work = tmp_path_factory.mktemp("flask-example")
    (work / "example.py").write_text(fenced(LIBRARY_README.read_text(), "python", "from flask import"))
    (work / "serve.py").write_text(SERVE)
    (work / "page.html").write_text(converse_page(prosody.ws_url))
    # the secrets as the README has the deployer provide them: files (0600, a trailing newline as
    # `hmac-token keygen --write` writes them) named by TOKEN_SECRET_FILE and OTP_SEED_FILE
    for name, value in (("token_secret", prosody.token_secret), ("otp_seed", prosody.otp_seed)):
        (work / name).write_text(value + "\n")
        os.chmod(work / name, 0o600)
    env = dict(os.environ, PYTHONPATH=str(REPO / "clients" / "python" / "src"), XMPP_HOST=prosody.host,
               TOKEN_SECRET_FILE=str(work / "token_secret"), OTP_SEED_FILE=str(work / "otp_seed"),
               FLASK_SECRET_KEY=secrets.token_hex(32))
    port = free_port()
    log = open(work / "flask.log", "wb")
    proc = subprocess.Popen(["/usr/bin/python3", "serve.py", str(port), str(REPO), str(installed_converse_plugins())],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not listening(port):
        assert proc.poll() is None and time.monotonic() < deadline, (work / "flask.log").read_text()
        time.sleep(0.1)
    yield "http://127.0.0.1:%d" % port
    stop_process(proc)
    log.close()


def logged_in(site, user):
    """An opener carrying the session cookie of `user`, as after the web app's login."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    opener.open(site + "/login/" + user).read()
    return opener


def get_credentials(opener, site, sec_fetch_site="same-origin"):
    """GET credentials_url as converse.js does (an XHR from the page: same-origin)."""
    req = urllib.request.Request(site + "/xmpp/credentials", headers={
        "Accept": "application/json, text/javascript", "Sec-Fetch-Site": sec_fetch_site,
        "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"})
    try:
        with opener.open(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_converses_get_gets_a_token_that_logs_in_once(prosody, site):
    status, headers, body = get_credentials(logged_in(site, "Flaskuser"), site)
    assert status == 200, "converse.js fetches credentials_url with GET: HTTP %d %r" % (status, body[:200])
    assert headers["Cache-Control"] == "no-store"
    creds = json.loads(body)
    assert creds["jid"] == "flaskuser@%s" % prosody.host
    assert rawxmpp.C2S(prosody.c2s_port, prosody.host).auth("PLAIN", plain("flaskuser", creds["password"])).status == "success"
    r = rawxmpp.C2S(prosody.c2s_port, prosody.host).auth("PLAIN", plain("flaskuser", creds["password"]))
    assert (r.status, r.condition) == ("failure", "not-authorized")  # a token logs in once


def test_no_token_without_the_session_or_for_another_site(site):
    status, _, _ = get_credentials(urllib.request.build_opener(), site)
    assert status == 401
    opener = logged_in(site, "flaskother")
    for fetch_site in ("cross-site", "same-site"):
        status, _, body = get_credentials(opener, site, fetch_site)
        assert status == 403, (fetch_site, status, body[:200])
    assert get_credentials(opener, site, "same-origin")[0] == 200  # the same session, from its own page


def test_at_most_20_tokens_a_minute_per_user(site):
    """A script with the user's session (or a page in a loop) cannot spend the user's per-account
    quota on the server (token_replay_user_quota = 100): the 21st request within a minute is
    refused, and another user is not held back."""
    opener = logged_in(site, "flaskburst")
    statuses = [get_credentials(opener, site)[0] for _ in range(21)]
    assert statuses == [200] * 20 + [429], statuses
    assert get_credentials(logged_in(site, "flaskcalm"), site)[0] == 200


def test_converse_logs_in_through_the_example(prosody, site):
    mark = prosody.log_mark()
    with Browser() as b:
        b.open("flask", site + "/login/flaskpage")
        line = "probe: authentication-success user=flaskpage mechanism=SASL-HMAC"
        log = prosody.wait_log(mark, line, timeout=30)
        state = b.state("flask")
        b.screenshot("flask", "flask-example")
    assert line in log, (state, prosody.log_since(mark)[-2000:])
