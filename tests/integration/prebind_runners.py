"""Each minting library's prebind (docs/prebind.md), run in its own language: `prebind(lang, url,
jid, token, resource=None)` returns the session {jid, sid, rid}, or raises prosody_hmac_token.PrebindError with the
library's kind, condition and message. The token goes in the environment, never on a command line.
For the live tests (test_prebind_libs.py) and the fake web app's Node and PHP prebind."""
import json
import os
import subprocess

import prosody_hmac_token
from harness import REPO

RUNNERS = {
    "python": ["/usr/bin/python3", "-c", """
import json, os, sys
sys.path.insert(0, 'clients/python/src')
import prosody_hmac_token as t
url, jid = sys.argv[1:3]
try:
    print(json.dumps({'ok': t.prebind(url, jid, os.environ['PREBIND_TOKEN'], timeout=10,
                                      resource=os.environ.get('PREBIND_RESOURCE') or None)}))
except t.PrebindError as e:
    print(json.dumps({'error': e.kind, 'condition': e.condition, 'message': str(e)}))
"""],
    "node": ["node", "--input-type=module", "-e", """
import { prebind, PrebindError } from './clients/node/index.js';
const [url, jid] = process.argv.slice(1);
try {
  const resource = process.env.PREBIND_RESOURCE || undefined;
  console.log(JSON.stringify({ ok: await prebind(url, jid, process.env.PREBIND_TOKEN, { timeout: 10000, resource }) }));
} catch (e) {
  if (!(e instanceof PrebindError)) throw e;
  console.log(JSON.stringify({ error: e.kind, condition: e.condition, message: e.message }));
}
"""],
    "php": ["php", "-r", """
foreach (['TokenError', 'PrebindError', 'Prebind', 'Token'] as $f) { require "clients/php/src/$f.php"; }
use ProsodyHmacToken\\{PrebindError, Token};
[$url, $jid] = array_slice($argv, 1);
try {
    $resource = getenv('PREBIND_RESOURCE') ?: null;
    echo json_encode(['ok' => Token::prebind($url, $jid, getenv('PREBIND_TOKEN'), ['timeout' => 10, 'resource' => $resource])]);
} catch (PrebindError $e) {
    echo json_encode(['error' => $e->kind, 'condition' => $e->condition, 'message' => $e->getMessage()]);
}
""", "--"],
}
LANGS = sorted(RUNNERS)


def prebind(lang, url, jid, token, resource=None):
    env = dict(os.environ, PREBIND_TOKEN=token, PREBIND_RESOURCE=resource or "")
    r = subprocess.run([*RUNNERS[lang], url, jid], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    public, mac = token.split(" ")
    assert public not in r.stdout + r.stderr and mac not in r.stdout + r.stderr, "the token was printed"
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    if "ok" in out:
        return out["ok"]
    raise prosody_hmac_token.PrebindError(out["error"], "%s: %s" % (lang, out["message"]), out["condition"])
