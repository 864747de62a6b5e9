"""Prosody 13's account controls: `prosodyctl shell user disable JID` refuses that user's tokens
(account-disabled, after verification) and ends their sessions; `user enable` lets them back in;
nobody else is touched. Prosody 0.12 has no such command (its shell says so)."""

import pytest

import rawxmpp
from harness import Prosody, prosody_version
from logins import flip_mac, plain, shell

PROSODY_13 = prosody_version() >= (13, 0, 0)


@pytest.fixture(scope="module")
def server():
    s = Prosody(extra_modules=("admin_shell",)).start()
    yield s
    s.stop()


def login(server, user, token=None, mech="PLAIN"):
    s = rawxmpp.C2S(server.c2s_port, server.host)
    r = s.auth(mech, plain(user, token or server.mint("%s@%s" % (user, server.host))))
    return s, r


def bound(server, user):
    s, r = login(server, user)
    assert r.status == "success", r
    s.restart()
    s.bind(restart=False)
    return s


def test_disable_refuses_the_accounts_tokens_and_ends_its_sessions_across_restarts(server):
    if not PROSODY_13:
        rc, out = shell(server, "user disable nina@%s" % server.host)
        print(rc, out)
        assert rc != 0 and "User disabled" not in out, out
        _, r = login(server, "nina")
        assert r.status == "success", r
        return
    nina, other = bound(server, "nina"), bound(server, "oscar")
    rc, out = shell(server, "user disable nina@%s" % server.host)
    assert rc == 0 and "User disabled" in out, out
    assert not nina.ping(), "the disabled account's session is still open"
    assert other.ping(), "another account's session was ended"
    mark = server.log_mark()
    for mech in ("PLAIN", "X-TOKEN"):
        _, r = login(server, "nina", mech=mech)
        assert (r.status, r.condition) == ("failure", "account-disabled"), (mech, r)
    assert server.log_since(mark).count("token login for nina@%s from 127.0.0.1: account-disabled" % server.host) == 2
    # a forged token is refused as forged: the forger does not learn the account is disabled
    _, r = login(server, "nina", flip_mac(server.mint("nina@%s" % server.host)))
    assert r.condition == "not-authorized", r
    _, r = login(server, "oscar")
    assert r.status == "success", r
    rc, out = shell(server, "user enable nina@%s" % server.host)
    assert rc == 0 and "User enabled" in out, out
    _, r = login(server, "nina")
    assert r.status == "success", r
    # kept in Prosody's storage: still disabled after a restart
    bound(server, "petra").close()
    rc, out = shell(server, "user disable petra@%s" % server.host)
    assert rc == 0, out
    server.keep_dir = True
    server.stop()
    server.start()
    server.keep_dir = False
    _, r = login(server, "petra")
    assert r.condition == "account-disabled", r
    # deleting would purge the mark with the user's stores and let the next token in: refused
    rc, out = shell(server, "user delete petra@%s" % server.host)
    assert "enable it first" in out, out
    _, r = login(server, "petra")
    assert r.condition == "account-disabled", r
    _, r = login(server, "nina")
    assert r.status == "success", r


def test_a_disable_with_the_name_as_typed_is_the_same_account(server):
    """Prosody's usermanager passes a name as its caller typed it (the admin shell nodepreps it,
    another module or a `>` line need not): "Rita" disables rita, whose token login gives the
    nodeprep'd name, and ends her session although mod_c2s looks it up as "Rita"."""
    if not PROSODY_13:
        pytest.skip("Prosody 0.12 has no account disabling")

    def usermanager(call):
        code = '>require"prosody.core.usermanager".%s' % call
        r = server.shell(code)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    rita, other = bound(server, "rita"), bound(server, "sven")
    out = usermanager('disable_user("Rita", %r)' % server.host)
    assert "true" in out, out
    assert not rita.ping(), "the disabled account's session is still open"
    assert other.ping(), "another account's session was ended"
    _, r = login(server, "rita")
    assert (r.status, r.condition) == ("failure", "account-disabled"), r
    assert "false" in usermanager('user_is_enabled("RITA", %r)' % server.host)
    usermanager('enable_user("RITA", %r)' % server.host)
    _, r = login(server, "rita")
    assert r.status == "success", r
