"""Drives tests/web/browser-session.mjs (headless Chromium with converse.js pages that stay open) from a
test: one JSON command per line, one JSON reply per command."""
import json
import os
import subprocess

from harness import REPO

ARTIFACTS = REPO / "test-artifacts" / "browser"


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, env=None):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["node", str(REPO / "tests" / "web" / "browser-session.mjs")], cwd=REPO / "tests" / "web",
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, **(env or {})))

    def cmd(self, op, **args):
        self.proc.stdin.write(json.dumps(dict(op=op, **args)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError("the browser driver exited: %s" % self.proc.stderr.read()[-2000:])
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise BrowserError("%s: %s" % (op, reply["error"]))
        return reply

    def open(self, tab, url):
        return self.cmd("open", tab=tab, url=url)

    def wait(self, tab, goal, timeout=25):
        return self.cmd("wait", tab=tab, **{"for": goal, "timeout": int(timeout * 1000)})

    def state(self, tab):
        return self.cmd("state", tab=tab)

    def reload(self, tab):
        return self.cmd("reload", tab=tab)

    def send(self, tab, to, body):
        return self.cmd("send", tab=tab, to=to, body=body)

    def screenshot(self, tab, name):
        path = ARTIFACTS / ("%s.png" % name)
        self.cmd("screenshot", tab=tab, path=str(path))
        assert path.is_file()
        return path

    def close(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
            except (BrowserError, OSError, ValueError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
