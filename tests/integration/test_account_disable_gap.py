"""An account disabled while one of its streams has logged in but not yet bound a resource: that
stream never becomes a usable session. Prosody 13's own `user-disabled` handling ends bound sessions
only; the plugin closes the unbound ones and checks the account again where a session becomes
usable: resource binding (also SASL2/Bind2's inline bind) and stream-management resumption.

"Disabled at the provider" below is `provider.disable` without Prosody's `user-disabled` event (a
disable that lands between a stream's login and its bind, or one made by a script at the storage
level): only the checks at bind and resumption stand between such a stream and a session."""
import xml.etree.ElementTree as ET

import pytest

import rawxmpp
from harness import Prosody, prosody_modules_dir, prosody_version
from logins import NS_BIND2, NS_SM, TRANSPORTS, connect, inline_resume, plain, sasl2_inline, shell

pytestmark = pytest.mark.skipif(prosody_version() < (13,), reason="Prosody 0.12 has no account disabling "
                                "(the bind check runs there in the existing suites)")

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture(scope="module")
def server():
    modules = ("mod_sasl2", "mod_sasl2_bind2", "mod_sasl2_sm")
    s = Prosody(extra_modules=("admin_shell", "smacks", "sasl2", "sasl2_bind2", "sasl2_sm", "disable_midway"),
                extra_plugin_paths=tuple(prosody_modules_dir(m) for m in modules)).start()
    yield s
    s.stop()


_users = iter(range(10_000))


def fresh(prefix):
    """A user name no other test touches (disabling is per account and kept in storage)."""
    return "%s%d" % (prefix, next(_users))


def logged_in(server, transport, user):
    """A stream of `user` after a classic SASL login and the stream restart: logged in, not bound."""
    s = connect(server, transport)
    r = s.auth("PLAIN", plain(user, server.mint("%s@%s" % (user, server.host))))
    assert r.status == "success", (r, server.tail())
    s.restart()
    return s


def disable_at_provider(server, user):
    """provider.disable alone, as a disable racing the login would leave it: no user-disabled event."""
    code = ">prosody.hosts[%r].users.disable(%r)" % (server.host, user)
    r = server.shell(code.replace("'", '"'))
    assert r.returncode == 0, r.stdout + r.stderr


def closed(stream):
    """Whether the server has ended the stream (a stream error, the connection gone, BOSH terminated)."""
    return not stream.ping()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_disable_closes_logged_in_unbound_streams(server, transport):
    """`user disable` while a stream is between login and bind: the stream is closed (one line) and
    cannot bind; another account's unbound stream is untouched."""
    user, other = fresh("gap"), fresh("bystander")
    s, b = logged_in(server, transport, user), logged_in(server, transport, other)
    try:
        mark = server.log_mark()
        rc, out = shell(server, "user disable %s@%s" % (user.capitalize(), server.host))  # re-cased: the same account
        assert rc == 0 and "User disabled" in out, out
        line = "Closing the unbound stream of %s@%s from 127.0.0.1: the account was disabled" % (user, server.host)
        server.wait_log(mark, line)
        with pytest.raises(ConnectionError):
            s.bind(restart=False)
        assert server.log_since(mark).count(line) == 1, server.log_since(mark)
        assert b.bind(restart=False) == "%s@%s/test" % (other, server.host)
        assert b.ping()
    finally:
        s.close()
        b.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bind_is_refused_for_an_account_disabled_after_login(server, transport):
    """The bind itself checks the account: an iq error (not-allowed), one log line, the stream closed."""
    user = fresh("binder")
    s = logged_in(server, transport, user)
    try:
        disable_at_provider(server, user)
        mark = server.log_mark()
        s.send_raw("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='%s'><resource>r</resource></bind></iq>"
                   % rawxmpp.NS_BIND)
        el = s.recv()
        assert el is not None and el.get("id") == "bind1", el
        assert el.get("type") == "error" and el.find("{jabber:client}error/{%s}not-allowed" % NS_STANZAS) \
            is not None, ET.tostring(el)
        line = "Refused a resource bind for %s@%s from 127.0.0.1: the account is disabled; closing the stream" % (
            user, server.host)
        assert server.wait_log(mark, line).count(line) == 1, server.log_since(mark)
        assert closed(s)
    finally:
        s.close()


def sasl2_with_inline_bind(stream, user, token):
    """XEP-0388 <authenticate/> with a Bind 2 request; returns the <success/> or <failure/> element."""
    return sasl2_inline(stream, user, token, "<bind xmlns='%s'><tag>gap</tag></bind>" % NS_BIND2)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sasl2_inline_bind_is_refused_for_an_account_disabled_after_login(server, transport):
    """Bind 2's inline bind goes through the same check. tests/integration/plugins/mod_disable_midway
    disables `midway*` accounts at the provider after the SASL2 login succeeded and before the bind
    (the race, made deterministic)."""
    user = fresh("midway")
    s = connect(server, transport)
    try:
        mark = server.log_mark()
        el = sasl2_with_inline_bind(s, user, server.mint("%s@%s" % (user, server.host)))
        assert el.tag == "{%s}success" % rawxmpp.NS_SASL2, ET.tostring(el)
        assert el.find("{%s}failed" % NS_BIND2) is not None, ET.tostring(el)
        assert el.findtext("{%s}authorization-identifier" % rawxmpp.NS_SASL2) == "%s@%s" % (user, server.host)
        line = "Refused a resource bind for %s@%s from 127.0.0.1: the account is disabled" % (user, server.host)
        assert server.wait_log(mark, line).count(line) == 1, server.log_since(mark)
        assert closed(s)
    finally:
        s.close()
    # the same inline bind for an account nobody disables binds (the test plugin leaves it alone)
    user = fresh("inline")
    s = connect(server, transport)
    try:
        el = sasl2_with_inline_bind(s, user, server.mint("%s@%s" % (user, server.host)))
        assert el.find("{%s}bound" % NS_BIND2) is not None, ET.tostring(el)
        assert el.findtext("{%s}authorization-identifier" % rawxmpp.NS_SASL2).startswith("%s@%s/gap~" % (user, server.host))
    finally:
        s.close()


def hibernating(server, user):
    """A bound c2s session of `user` with resumable stream management whose connection dropped;
    returns its resumption id."""
    s = logged_in(server, "c2s", user)
    s.bind(restart=False)
    s.send_raw("<enable xmlns='%s' resume='true'/>" % NS_SM)
    el = s.recv()
    assert el is not None and el.tag == "{%s}enabled" % NS_SM, el
    mark = server.log_mark()
    s.sock.close()  # no </stream:stream>: the session hibernates
    server.wait_log(mark, "Session going into hibernation")
    assert "Session going into hibernation" in server.log_since(mark), server.log_since(mark)
    return el.get("id")


def resume(stream, previd):
    stream.send_raw("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    return stream.recv()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resumption_is_refused_for_an_account_disabled_after_login(server, transport):
    """A stream logged in before the account was disabled cannot take over the account's hibernating
    session (XEP-0198 <resume/>): <failed/>, one log line, the stream closed."""
    user = fresh("resumer")
    previd = hibernating(server, user)
    s = logged_in(server, transport, user)
    try:
        disable_at_provider(server, user)
        mark = server.log_mark()
        el = resume(s, previd)
        assert el is not None and el.tag == "{%s}failed" % NS_SM, el if el is None else ET.tostring(el)
        line = "Refused a stream resumption for %s@%s from 127.0.0.1: the account is disabled" % (user, server.host)
        assert server.wait_log(mark, line).count(line) == 1, server.log_since(mark)
        assert closed(s)
    finally:
        s.close()


def test_resumption_of_an_enabled_account_still_works(server):
    """The check lets an enabled account resume (what the refusal above is measured against)."""
    user = fresh("resumes")
    previd = hibernating(server, user)
    s = logged_in(server, "c2s", user)
    try:
        el = resume(s, previd)
        assert el is not None and el.tag == "{%s}resumed" % NS_SM, el if el is None else ET.tostring(el)
        assert s.ping()
    finally:
        s.close()


@pytest.mark.parametrize("transport", ["c2s", "websocket"])
def test_sasl2_inline_resumption_is_refused_for_an_account_disabled_after_login(server, transport):
    """mod_sasl2_sm resumes inside <authenticate/> (mod_smacks.do_resume, in the SASL2 success event),
    with none of the <resume/> stanza events: the plugin checks the account there too. The <success/>
    carries <failed/> instead of <resumed/>, one log line, the stream closed; the fallback Bind 2
    request is refused too. mod_disable_midway disables `midway*` accounts between the SASL2 login and
    the resumption. An account nobody disables resumes inline (what the refusal is measured against)."""
    user = fresh("midway")
    previd = hibernating(server, user)
    s = connect(server, transport)
    try:
        mark = server.log_mark()
        el = sasl2_inline(s, user, server.mint("%s@%s" % (user, server.host)), inline_resume(previd))
        assert el.tag == "{%s}success" % rawxmpp.NS_SASL2, ET.tostring(el)
        assert el.find("{%s}resumed" % NS_SM) is None, ET.tostring(el)
        assert el.find("{%s}failed/{%s}forbidden" % (NS_SM, NS_STANZAS)) is not None, ET.tostring(el)
        assert el.find("{%s}bound" % NS_BIND2) is None, ET.tostring(el)
        line = "Refused a stream resumption for %s@%s from 127.0.0.1: the account is disabled" % (user, server.host)
        assert server.wait_log(mark, line).count(line) == 1, server.log_since(mark)
        assert closed(s)
    finally:
        s.close()
    user = fresh("inline_resumes")
    previd = hibernating(server, user)
    s = connect(server, transport)
    try:
        el = sasl2_inline(s, user, server.mint("%s@%s" % (user, server.host)), inline_resume(previd))
        assert el.find("{%s}resumed" % NS_SM) is not None, ET.tostring(el)
        assert el.find("{%s}resumed" % NS_SM).get("previd") == previd, ET.tostring(el)
    finally:
        s.close()
