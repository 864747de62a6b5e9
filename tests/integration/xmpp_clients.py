"""slixmpp (Debian's python3-slixmpp), the real client, with X-TOKEN added the way a bot would add it."""
import asyncio
import inspect
import ssl


import slixmpp
from slixmpp.util.sasl import mechanisms as sasl_mechs
from slixmpp.util.sasl.client import Mech, sasl_mech


@sasl_mech(21)
class X_TOKEN(Mech):  # noqa: N801 - slixmpp names mechanisms by class
    """prosody-modules' X-TOKEN: PLAIN framing, token as the secret."""
    name = "X-TOKEN"
    required_credentials = {"username", "password"}
    optional_credentials = {"authzid"}
    security = set()

    def process(self, challenge=b""):
        c = self.credentials
        return c["authzid"] + b"\x00" + c["username"] + b"\x00" + c["password"]


assert sasl_mechs  # the stock mechanisms are registered by importing the module

import sasl_hmac  # noqa: F401 - registers SASL-HMAC (clients/slixmpp, on the path by pytest.ini)
assert sasl_hmac  # imported for its side effect


def login(jid, password, port, mechanism="PLAIN", timeout=15, starttls=True, tls_max=None):
    """Logs in over c2s with STARTTLS (at most TLS version `tls_max`, e.g. ssl.TLSVersion.TLSv1_2).
    Returns ("bound", full_jid) or ("failed", condition)."""
    try:
        return _LOOP.run_until_complete(asyncio.wait_for(_login(jid, password, port, mechanism, starttls, tls_max), timeout))
    except asyncio.TimeoutError:
        return ("timeout", None)


def connect(xmpp, port, starttls=True):
    """Connects to 127.0.0.1:port with STARTTLS required (or, starttls=False, in plain text).
    bookworm's slixmpp 1.8 takes the address and the STARTTLS policy as connect()'s arguments;
    trixie's 1.10 takes host and port and reads the policy from enable_* attributes."""
    if "address" in inspect.signature(xmpp.connect).parameters:
        xmpp.connect(address=("127.0.0.1", port), force_starttls=starttls, disable_starttls=not starttls)
    else:
        xmpp.enable_direct_tls = False
        xmpp.enable_starttls = starttls
        xmpp.enable_plaintext = not starttls
        xmpp.connect("127.0.0.1", port)


# One loop for the whole test run: slixmpp leaves filter tasks on it that must not see it closed.
_LOOP = asyncio.new_event_loop()
asyncio.set_event_loop(_LOOP)


async def _login(jid, password, port, mechanism, starttls, tls_max=None):
    xmpp = slixmpp.ClientXMPP(jid, password, sasl_mech=mechanism)
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE  # the harness's self-signed certificate
    if tls_max is not None:
        xmpp.ssl_context.maximum_version = tls_max
    done = asyncio.get_event_loop().create_future()

    def finish(value):
        if not done.done():
            done.set_result(value)

    xmpp.add_event_handler("session_bind", lambda bound: finish(("bound", str(bound))))
    xmpp.add_event_handler("failed_auth", lambda st: finish(("failed", st["condition"])))
    xmpp.add_event_handler("failed_all_auth", lambda _: finish(("failed", "no-mechanism")))
    xmpp.add_event_handler("disconnected",
                           lambda _: finish(("disconnected", "after-sasl-success" if getattr(xmpp, "_sasl_ok", False) else None)))
    xmpp.add_event_handler("auth_success", lambda _: setattr(xmpp, "_sasl_ok", True))
    connect(xmpp, port, starttls)
    result = await done
    try:
        await asyncio.wait_for(xmpp.disconnect(), 5)
    except (asyncio.TimeoutError, TypeError):
        pass
    return result
