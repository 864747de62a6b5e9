"""The replay cache across restarts of a live Prosody (docs/security.md, "Restarts"): a token used
just before a clean stop (SIGTERM, as systemd and prosodyctl stop do) is still refused after the
next start; after a crash (SIGKILL) it can be used once more within its lifetime, as documented."""
import os
import signal

import pytest

from harness import Prosody
from test_live import connect, plain


@pytest.fixture()
def server():
    s = Prosody(keep_dir=True)
    yield s
    s.keep_dir = False
    s.stop()


def login(server, user, token):
    s = connect(server, "c2s")
    try:
        return s.auth("PLAIN", plain(user, token))
    finally:
        s.close()


def test_a_token_used_before_a_clean_restart_stays_used(server):
    server.start()
    token = server.mint("rob@" + server.host)
    assert login(server, "rob", token).status == "success"
    server.stop()
    server.start()
    mark = server.log_mark()
    r = login(server, "rob", token)
    assert (r.status, r.condition) == ("failure", "not-authorized"), r
    line = "Failed PLAIN token login for rob@%s from 127.0.0.1: replayed" % server.host
    assert server.wait_log(mark, line).count(line) == 1
    assert login(server, "rob", server.mint("rob@" + server.host)).status == "success"


def test_after_a_crash_a_recent_token_works_once_more(server):
    """The documented window: nothing is written per login, so a crash forgets the cache."""
    server.start()
    token = server.mint("sam@" + server.host)
    assert login(server, "sam", token).status == "success"
    os.kill(server.pid(), signal.SIGKILL)
    server.proc.wait(10)
    server.start()
    assert login(server, "sam", token).status == "success"
    assert login(server, "sam", token).status == "failure"
