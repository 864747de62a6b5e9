"""clients/converse/sasl-hmac.js on its own, in Node (the browser tests drive it inside converse.js;
this covers the rules that need no server): a token is tried once, a connection that has SASL-HMAC
never falls back to legacy login, and a page that is not a secure context uses no token. Strophe is
a minimal stand-in exposing the three members the module uses (SASLMechanism,
Connection.prototype._attemptLegacyAuth, Status)."""
import subprocess

import pytest

from harness import REPO

# version_independent (pytest.ini): the converse.js mechanism in Node; no Prosody
pytestmark = pytest.mark.version_independent

SCRIPT = r"""
import { webcrypto } from 'node:crypto';
if (!globalThis.crypto) globalThis.crypto = webcrypto;
globalThis.isSecureContext = true;
const { makeSASLHMAC } = await import(process.argv[1]);
class SASLMechanism { constructor(mechname, isClientFirst, priority) { Object.assign(this, { mechname, isClientFirst, priority }); }
    onStart() {} onFailure() {} onSuccess() {} }
class Connection { _attemptLegacyAuth() { this.legacy = true; } _changeConnectStatus(s) { this.status = s; } }
const Strophe = { SASLMechanism, Connection, Status: { AUTHFAIL: 4 } };
const Mech = makeSASLHMAC(Strophe);
const m = new Mech();
const token = (n) => '12345678' + String(n).padStart(32, '0') + ' ' + Buffer.alloc(32, n).toString('base64');
const conn = { authcid: 'alice', authzid: '', pass: token(1) };
const out = {};
out.fresh = m.test(conn);
m.clientChallenge(conn);
out.after_attempt = m.test(conn);
out.other_token = m.test({ ...conn, pass: token(2) });
out.not_a_token = m.test({ ...conn, pass: 'hunter2' });
// a page that is not a secure context: the token is not used, even where crypto.subtle exists
globalThis.isSecureContext = false;
out.insecure_page = m.test({ ...conn, pass: token(3) });
globalThis.isSecureContext = true;
const pinned = new Connection(); pinned.mechanisms = { 'SASL-HMAC': m };
pinned._attemptLegacyAuth();
out.pinned = { legacy: !!pinned.legacy, status: pinned.status };
const other = new Connection(); other.mechanisms = { PLAIN: {} };
other._attemptLegacyAuth();
out.other = { legacy: !!other.legacy, status: other.status ?? null };
console.log(JSON.stringify(out));
"""


def test_token_tried_once_and_no_legacy_fallback():
    module = REPO / "clients" / "converse" / "sasl-hmac.js"
    r = subprocess.run(["node", "--input-type=module", "-e", SCRIPT, str(module)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    import json
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"fresh": True, "after_attempt": False, "other_token": True, "not_a_token": False, "insecure_page": False,
                   "pinned": {"legacy": False, "status": 4}, "other": {"legacy": True, "status": None}}, out
