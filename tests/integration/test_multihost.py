"""The plugin in the global modules_enabled (the way admins enable modules) on a server where one
VirtualHost uses another provider: that host loads both modules cleanly, without token settings,
keeps Prosody's own mechanisms and accounts and takes no token; the hmac hosts work as before."""
import subprocess
from pathlib import Path

import pytest

import rawxmpp
from harness import PROSODY, Prosody
from logins import plain

PLAIN_HOST = "plain.test"
MODULES = '"roster", "saslauth", "tls", "disco", "ping", "bosh", "websocket", "auth_hmac", "sasl_hmac"'


@pytest.fixture(scope="module")
def server():
    # the VirtualHost block sits in the global part of the template: it ends at the next VirtualHost
    s = Prosody(extra_modules=(), extra_global="\n".join([
        "modules_enabled = { %s }" % MODULES,
        'VirtualHost "%s"' % PLAIN_HOST,
        '\tauthentication = "internal_hashed"',
        '\tssl = { key = "host.key", certificate = "host.crt" }',  # relative to the config's directory
    ]))
    ctl = Path(PROSODY).with_name("prosodyctl")
    r = subprocess.run([str(ctl), "--config", str(s.config), "register", "carol", PLAIN_HOST, "carols-password"],
                       capture_output=True, text=True, cwd=s.dir, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    s.start()
    # listening comes before every host has loaded its modules: wait for each host's last word
    for needle in ['%s:auth_hmac\tinfo\tNot active on %s' % (PLAIN_HOST, PLAIN_HOST),
                   "%s:auth_hmac\tdebug\tToken authentication ready" % s.host,
                   "%s:auth_hmac\tdebug\tToken authentication ready" % s.other_host]:
        assert needle in s.wait_log(0, needle, timeout=15), (needle, s.tail())
    yield s
    s.stop()


def test_the_other_host_loads_cleanly(server):
    log = server.log_path.read_text()
    # the harness has no certs/ directory: Prosody says so at every start, whatever the modules
    errors = [line for line in log.splitlines() if "\terror\t" in line and "Error indexing certificate directory" not in line]
    assert not errors and "Error initializing" not in log, errors
    assert "token_secret is not set" not in log and "otp_seed is not set" not in log, server.tail()
    assert ('Not active on %s: its authentication is "internal_hashed", so token logins are not offered here'
            % PLAIN_HOST) in log
    assert "Not active on %s:" % server.host not in log and "Not active on %s:" % server.other_host not in log
    # the ready line is for the hosts that offer token logins
    assert "Ready on %s:" % PLAIN_HOST not in log
    assert all(log.count("Ready on %s: prosody-auth-hmac " % h) == 1 for h in (server.host, server.other_host)), log


def test_the_other_host_keeps_its_own_mechanisms_and_accounts(server):
    mechs = rawxmpp.C2S(server.c2s_port, PLAIN_HOST).mechanisms()
    assert "SCRAM-SHA-1" in mechs and not {"X-TOKEN", "SASL-HMAC", "SASL-HMAC-PLUS"} & set(mechs), mechs
    assert rawxmpp.C2S(server.c2s_port, PLAIN_HOST).auth("PLAIN", plain("carol", "carols-password")).status == "success"
    assert rawxmpp.C2S(server.c2s_port, PLAIN_HOST).auth("PLAIN", plain("carol", "wrong")).status == "failure"


def test_the_other_host_takes_no_token(server):
    # a token signed with every secret of the server, for that host's JID: still not a password there
    for secret in (server.token_secret, server.other_token_secret):
        token = server.mint("carol@%s" % PLAIN_HOST, secret=secret)
        assert rawxmpp.C2S(server.c2s_port, PLAIN_HOST).auth("PLAIN", plain("carol", token)).status == "failure"


def test_the_hmac_hosts_work(server):
    for host in (server.host, server.other_host):
        mechs = rawxmpp.C2S(server.c2s_port, host).mechanisms()
        assert {"PLAIN", "X-TOKEN", "SASL-HMAC"} <= set(mechs), (host, mechs)
        secret = server.token_secret if host == server.host else server.other_token_secret
        token = server.mint("dave@%s" % host, secret=secret)
        assert rawxmpp.C2S(server.c2s_port, host).auth("PLAIN", plain("dave", token)).status == "success", host
