"""Each minting library (clients/python, clients/node, clients/php) mints a token in its own
language and the user logs in to a live Prosody with it (PLAIN over c2s with STARTTLS): the JID it
signs is the one Prosody checks (an upper-case name logs in as its lower-case account), the token
is good once, and it is no good for another user."""
import json
import os
import subprocess
import sys

import pytest

import rawxmpp
from harness import REPO, Prosody
from logins import plain

RUNNERS = {
    "python": [sys.executable, "-c",
               "import json, os, sys; sys.path.insert(0, 'clients/python/src'); import prosody_hmac_token as t; "
               "print(json.dumps(t.credentials(sys.argv[1], os.environ['TOKEN_SECRET'], os.environ['OTP_SEED'])))"],
    "node": ["node", "--input-type=module", "-e",
             "import { credentials } from './clients/node/index.js'; "
             "console.log(JSON.stringify(credentials(process.argv[1], process.env.TOKEN_SECRET, process.env.OTP_SEED)));"],
    "php": ["php", "-r",
            "require 'clients/php/src/TokenError.php'; require 'clients/php/src/Token.php'; "
            "echo json_encode(ProsodyHmacToken\\Token::credentials($argv[1], getenv('TOKEN_SECRET'), getenv('OTP_SEED')));",
            "--"],
}


@pytest.fixture(scope="module")
def server():
    s = Prosody().start()
    yield s
    s.stop()


def credentials(lang, server, jid):
    env = dict(os.environ, TOKEN_SECRET=server.token_secret, OTP_SEED=server.otp_seed)
    r = subprocess.run([*RUNNERS[lang], jid], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def login(server, user, token):
    return rawxmpp.C2S(server.c2s_port, server.host).auth("PLAIN", plain(user, token))


@pytest.mark.parametrize("lang", sorted(RUNNERS))
def test_a_token_minted_by_the_library_logs_in_once(server, lang):
    user = "Mint" + lang.capitalize()
    body = credentials(lang, server, "%s@%s" % (user, server.host))
    assert body["jid"] == "%s@%s" % (user.lower(), server.host)
    mark = server.log_mark()
    assert login(server, user, body["password"]).status == "success"  # as typed: Prosody nodepreps it
    assert "probe: authentication-success user=%s " % user.lower() in server.wait_log(mark, "authentication-success")
    r = login(server, user.lower(), body["password"])
    assert (r.status, r.condition) == ("failure", "not-authorized")  # replayed
    other = credentials(lang, server, "someone%s@%s" % (lang, server.host))
    r = login(server, "victim" + lang, other["password"])
    assert (r.status, r.condition) == ("failure", "not-authorized")  # another user's token
