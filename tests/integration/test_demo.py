"""`make serve PROXY=nginx|apache`: the demo behind a reverse proxy, kept running for a person.
The page, the credentials_url and Prosody's WebSocket are reachable through the proxy's one HTTPS
origin while it serves; SIGTERM stops it cleanly and leaves nothing listening."""
import http.cookiejar
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from harness import REPO, listening
from proxies import tls_context, websocket_client
from logins import plain

DEMO = REPO / "scripts" / "demo.py"


class Demo:
    """`demo.py --serve --proxy KIND` as a person starts it: without PYTHONUNBUFFERED (this build
    machine sets it; a stock Debian does not, so a line the demo leaves in its buffer must fail here
    too), its output read by a thread so that every wait has a deadline."""

    def __init__(self, kind):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        self.proc = subprocess.Popen([sys.executable, str(DEMO), "--serve", "--proxy", kind], cwd=REPO, text=True,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_until(self, needle, timeout):
        """Output lines until one contains `needle`; an AssertionError after `timeout` seconds without it."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            lines.append(line)
            if needle in line:
                return "".join(lines)
        raise AssertionError("no %r in the demo's output within %d s:\n%s" % (needle, timeout, "".join(lines)))

    def rest(self, timeout=60):
        """Everything it prints until it exits (within `timeout` seconds)."""
        self.proc.wait(timeout=timeout)
        lines = []
        while (line := self.lines.get(timeout=10)) is not None:
            lines.append(line)
        return "".join(lines)

    def __getattr__(self, name):  # send_signal, returncode, poll, kill
        return getattr(self.proc, name)


@pytest.mark.parametrize("kind", ["nginx", "apache"])
def test_serve_behind_a_proxy(kind):
    proc = Demo(kind)
    try:
        out = proc.read_until("Serving until Ctrl-C", 180)
        assert "headless Chromium logs in through %s over HTTPS" % kind in out, out
        assert "converse.js shows: roster" in out, out
        origin = re.search(r"open (https://localhost:\d+)/login\?user=carol&", proc.read_until("open https://", 5)).group(1)
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", out)] + [int(origin.rsplit(":", 1)[1])]
        ctx = tls_context()

        # a browser's cookie jar: credentials_url answers only the web session's user
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                             urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

        def get(path):
            req = urllib.request.Request(origin + path, headers={"Sec-Fetch-Site": "same-origin"})
            with opener.open(req, timeout=10) as r:
                return r.status, r.read().decode()

        status, body = get("/login?user=dave&next=/%3Ftransport%3Dwebsocket")
        assert status == 200 and "converse" in body
        status, body = get("/credentials")
        creds = json.loads(body)
        domain = creds["jid"].split("@")[1]
        ws = websocket_client(int(origin.rsplit(":", 1)[1]), True, domain, name="localhost")
        assert ws.auth("PLAIN", plain("dave", creds["password"])).status == "success"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.rest()
    assert proc.returncode == 0, rest
    assert "Stopping %s (pid" % kind in rest and "Demo succeeded." in rest, rest
    assert not [p for p in ports if listening(p)], (ports, rest)


def leftovers(out):
    """Processes still running from the demo's scratch directories (Prosody's, the proxy's)."""
    dirs = set(re.findall(r"(/tmp/(?:prosody-hmac|nginx|apache)-[A-Za-z0-9_]+)", out))
    assert dirs, out
    found = []
    for d in dirs:
        r = subprocess.run(["pgrep", "-af", d], capture_output=True, text=True)
        found += [line for line in r.stdout.splitlines() if "pgrep" not in line]
    return found


@pytest.mark.parametrize("when", ["during the browser login", "twice while serving"])
def test_sigterm_stops_everything(when):
    proc = Demo("apache")
    out = ""
    try:
        if when == "during the browser login":
            out = proc.read_until("headless Chromium logs in", 180)
            time.sleep(1)  # node and Chromium are up
            proc.send_signal(signal.SIGTERM)
            expected = 130
        else:
            out = proc.read_until("Serving until Ctrl-C", 180)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            expected = 0
        out += proc.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == expected, out
    assert "Stopping apache" in out and "Stopping Prosody" in out, out
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", out)]
    assert ports and not [p for p in ports if listening(p)], (ports, out)
    assert not leftovers(out), leftovers(out)
    # this demo's login script only (its command line names this demo's origin): another demo, of
    # this checkout's other live pass or of another checkout, may be running beside this one
    origins = set(re.findall(r"https://localhost:\d+", out))
    assert origins, out
    login_script = str(REPO / "tests" / "web" / "converse-login.mjs")
    left = subprocess.run(["pgrep", "-af", login_script], capture_output=True, text=True).stdout
    ours = [line for line in left.splitlines() if any(o + "/" in line for o in origins)]
    assert not ours, ours
