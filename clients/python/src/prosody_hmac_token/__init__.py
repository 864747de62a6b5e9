"""Mint (and check) prosody-auth-hmac login tokens, with the Python standard library only.

A token is::

    OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare-JID))

* ``OTP``: RFC 6238 TOTP (HMAC-SHA1) of the current UTC unix time, keyed with the base32-decoded
  ``otp_seed`` (pyotp-compatible), ``digits`` digits with leading zeros kept.
* ``NONCE``: ``nonce_digits`` decimal digits drawn from :mod:`secrets` (no modulo bias).
* ``bare-JID``: the account the user logs in as, in Prosody's form (see :func:`signed_jid`).

Typical use, in a ``credentials_url`` handler::

    import json, os
    import prosody_hmac_token as pht

    body = pht.credentials("alice@example.org", os.environ["TOKEN_SECRET"], os.environ["OTP_SEED"])
    json.dumps(body)  # {"jid": "alice@example.org", "password": "<token>"}

When the user logs out of the site, or their account is locked, or their password is reset,
:func:`signout` asks Prosody to end the user's chat sessions and refuse the tokens minted before
(docs/signout.md)::

    pht.signout("http://127.0.0.1:5280/auth_hmac/signout", "alice@example.org",
                os.environ["TOKEN_SECRET"])  # raises SignoutError unless Prosody accepted it

All times are integer UTC unix seconds (``int(time.time())``); there are no time zones and no
datetime objects anywhere. Errors in the caller's input are raised as :class:`TokenError`, whose
``kind`` is ``"jid"``, ``"nonce"``, ``"token"`` or ``"settings"``; no message ever contains a secret or a seed.
A sign-out Prosody did not accept is raised as :class:`SignoutError`.

:func:`prebind` opens a chat session for converse.js's ``prebind_url`` (docs/prebind.md): it logs
in over BOSH with SASL-HMAC, checks that Prosody proves it holds the token secret, binds a
resource and returns ``{"jid", "sid", "rid"}``; it raises :class:`PrebindError` otherwise::

    token = pht.mint("alice@example.org", os.environ["TOKEN_SECRET"], os.environ["OTP_SEED"])
    session = pht.prebind("http://127.0.0.1:5280/http-bind", "alice@example.org", token)
"""

import base64
import binascii
import collections.abc
import hashlib
import hmac
import http.client
import io
import ipaddress
import math
import secrets
import socket
import ssl
import stringprep
import struct
import threading
import time
import unicodedata
import urllib.parse
import xml.etree.ElementTree as ET
import xml.parsers.expat
from typing import Callable, Dict, Iterable, List, Optional, Tuple, TypedDict, Union
from xml.sax.saxutils import escape, quoteattr

__version__ = "0.2.0"

__all__ = [
    "TokenError",
    "SignoutError",
    "mint",
    "credentials",
    "signed_jid",
    "verify",
    "signout_request",
    "signout",
    "PrebindError",
    "PrebindSession",
    "prebind",
    "__version__",
]

#: Plugin ranges (the server refuses settings outside them).
DIGITS_RANGE = (6, 8)
STEP_RANGE = (1, 86400)
NONCE_DIGITS_RANGE = (16, 64)
SKEW_RANGE = (0, 10)

#: RFC 7622: each part of a JID is at most 1023 bytes.
MAX_JID_PART = 1023
#: The longest token :func:`verify` looks at, in bytes.
MAX_TOKEN_BYTES = 1024

#: The sign-out request (docs/signout.md): its nonce's digits, its largest time (u64), the
#: default seconds :func:`signout` waits for Prosody.
SIGNOUT_NONCE_DIGITS = 32
MAX_SIGNOUT_TIME = 2**64 - 1
SIGNOUT_TIMEOUT = 5.0

_MAC_B64_LEN = 44  # standard base64 of 32 bytes, with padding
# Domain separators: the derived key's message starts with a zero octet, so the key is never a
# token's MAC (whose message starts with a digit), and the request's message is labelled too.
_SIGNOUT_KEY_LABEL = b"\x00prosody-auth-hmac signout key v1"
_SIGNOUT_LABEL = b"prosody-auth-hmac signout v1\x00"
# RFC 3454 table B.1: what nodeprep maps to nothing (a localpart holding one is not nodeprep'd)
_MAPPED_TO_NOTHING = frozenset("\u00ad\u034f\u1806\u180b\u180c\u180d\u200b\u200c\u200d\u2060\ufeff") | frozenset(
    chr(c) for c in range(0xFE00, 0xFE10)
)

_ASCII_DIGITS = frozenset("0123456789")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_DOMAIN_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# What nodeprep (RFC 3920 appendix A.5) prohibits in ASCII, besides the control characters.
_LOCAL_PROHIBITED = frozenset(" \"&'/:<>@")

_PREPARED_HINT = (
    "pass prepared=True with the JID as Prosody nodepreps it "
    "(hmac-token jid NAME@HOST prints it)"
)

Secret = Union[str, bytes]


class TokenError(ValueError):
    """The caller's input cannot make (or check) a token.

    ``kind`` says which input is at fault:

    * ``"jid"``: not a bare JID Prosody accepts, or not one this library can prepare;
    * ``"nonce"``: an explicit nonce that is not exactly ``nonce_digits`` ASCII digits;
    * ``"token"``: :func:`prebind` was given something that is not a token, or a token this
      process has tried before;
    * ``"settings"``: ``digits``, ``step``, ``nonce_digits``, ``skew`` or ``now`` out of range,
      or an unusable ``token_secret`` / ``otp_seed`` (empty, or a seed that is not base32).

    The message never contains a secret or a seed.
    """

    kind: str

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class SignoutError(Exception):
    """Prosody did not accept a sign-out request: the user may still be signed in to the chat.

    ``kind`` says what happened:

    * ``"refused"``: Prosody answered 403: the request was stale (check the web app's clock),
      replayed, for another host, badly signed (another ``token_secret``) or over the user's rate
      limit. Prosody's log has the reason; the answer has none.
    * ``"http"``: another HTTP status (``status``): 404, the URL does not reach the sign-out
      endpoint (the path, the ``Host``, or ``token_signout`` is not on for the host); 500, Prosody
      ended the sessions but could not store the sign-out: call :func:`signout` again.
    * ``"network"``: no answer: the connection failed or timed out, or TLS did not verify.

    The message never contains the request (it is valid for 60 s) or the secret.
    """

    kind: str
    status: Optional[int]

    def __init__(self, kind: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class PrebindError(Exception):
    """:func:`prebind` opened no session: the browser has nothing to attach to.

    ``kind`` says what happened:

    * ``"refused"``: Prosody refused the login with a SASL failure, whose condition is in
      ``condition`` (``"not-authorized"``: a token of another ``token_secret``, for another user,
      or already used; ``"credentials-expired"``: check this machine's clock and ``otp_seed``;
      ``"temporary-auth-failure"``; ...). Mint a new token to try again.
    * ``"unproven"``: the server did not prove that it holds the token secret (it does not offer
      SASL-HMAC, or its proof is missing or wrong), or it bound another JID than the token's. The
      URL does not reach the Prosody this web app shares ``token_secret`` with, or something in
      between is not Prosody: nothing that would log in was sent.
    * ``"transport"``: no usable answer: the connection failed or timed out, an HTTP status other
      than 200, an answer that is not a BOSH body, a session Prosody terminated, or an answer out
      of protocol.

    The message never contains the token or its parts.
    """

    kind: str
    condition: Optional[str]

    def __init__(self, kind: str, message: str, condition: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.condition = condition


# ---------------------------------------------------------------------------------------------
# Input checks


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_range(name: str, value: object, bounds: Tuple[int, int]) -> int:
    lo, hi = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise TokenError("settings", "%s must be an integer from %d to %d" % (name, lo, hi))
    return value


def _check_settings(digits: object, step: object, nonce_digits: object) -> None:
    _check_range("digits", digits, DIGITS_RANGE)
    _check_range("step", step, STEP_RANGE)
    _check_range("nonce_digits", nonce_digits, NONCE_DIGITS_RANGE)


def _now(now: Optional[int]) -> int:
    if now is None:
        return int(time.time())
    if not _is_int(now) or now < 0:
        raise TokenError(
            "settings", "now must be a non-negative integer (UTC unix seconds) or None"
        )
    return now


def _secret_key(token_secret: object) -> bytes:
    """The HMAC key: the UTF-8 bytes of the configured string (bytes are taken as they are)."""
    if isinstance(token_secret, bytes):
        key = token_secret
    elif isinstance(token_secret, str):
        try:
            key = token_secret.encode("utf-8")
        except UnicodeEncodeError:
            raise TokenError("settings", "token_secret is not encodable as UTF-8") from None
    else:
        raise TokenError("settings", "token_secret must be a str (or bytes)")
    if not key:
        raise TokenError("settings", "token_secret is empty")
    return key


def _seed_key(otp_seed: object) -> bytes:
    """Base32 (RFC 4648 alphabet, case-insensitive, '=' padding optional), as pyotp reads it."""
    if isinstance(otp_seed, bytes):
        try:
            otp_seed = otp_seed.decode("ascii")
        except UnicodeDecodeError:
            raise TokenError("settings", "otp_seed is not base32") from None
    if not isinstance(otp_seed, str):
        raise TokenError("settings", "otp_seed must be a str")
    trimmed = otp_seed.rstrip("=")
    if not trimmed:
        raise TokenError("settings", "otp_seed is empty")
    if not trimmed.isascii():
        raise TokenError("settings", "otp_seed is not base32 (A-Z and 2-7, padding optional)")
    padded = trimmed + "=" * (-len(trimmed) % 8)
    try:
        return base64.b32decode(padded, casefold=True)
    except (binascii.Error, ValueError):
        raise TokenError(
            "settings", "otp_seed is not base32 (A-Z and 2-7, padding optional)"
        ) from None


# ---------------------------------------------------------------------------------------------
# JID


def _has_control(part: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in part)


def _split(jid: object) -> Tuple[str, str]:
    if not isinstance(jid, str):
        raise TokenError("jid", "the JID must be a str")
    if not jid:
        raise TokenError("jid", "the JID is empty")
    if "/" in jid:
        raise TokenError("jid", "a full JID (with a '/resource') is not a bare JID")
    if jid.count("@") != 1:
        raise TokenError(
            "jid",
            "a bare JID is NAME@HOST: it needs exactly one '@'"
            if "@" in jid
            else "a bare JID is NAME@HOST: the '@' and the user name are missing",
        )
    local, domain = jid.split("@")
    if not local:
        raise TokenError("jid", "the JID's localpart (user name) is empty")
    if not domain:
        raise TokenError("jid", "the JID's domain is empty")
    return local, domain


def _check_prohibited(part: str, what: str) -> None:
    if _has_control(part):
        raise TokenError("jid", "the JID's %s contains a control character" % what)
    bad = sorted(set(part) & _LOCAL_PROHIBITED)
    if bad:
        shown = " ".join("space" if c == " " else c for c in bad)
        raise TokenError("jid", "the JID's %s contains a character Prosody refuses: %s" % (what, shown))


def _check_size(part: str, what: str) -> None:
    if len(part.encode("utf-8", "surrogatepass")) > MAX_JID_PART:
        raise TokenError("jid", "the JID's %s is over %d bytes" % (what, MAX_JID_PART))


def signed_jid(jid: str, prepared: bool = False) -> str:
    """The bare JID a token for ``jid`` is signed for: the account Prosody logs the user in as.

    Without ``prepared``, the JID must be ASCII: the localpart is lower-cased (what nodeprep does
    to ASCII) and must not contain a space, ``" & ' / : < > @`` or a control character; the domain
    is lower-cased and must be dot-separated, non-empty labels of ``a-z 0-9 -``. A non-ASCII
    localpart is refused, because Prosody's nodeprep (NFKC, case folding, Unicode 3.2 tables) is
    not reimplemented here.

    With ``prepared=True`` the caller vouches that ``jid`` is already exactly Prosody's form (as
    ``hmac-token jid NAME@HOST`` prints it) and it is returned unchanged; it is still refused if a
    part is empty, it has a ``/`` or not exactly one ``@``, the localpart contains one of the
    prohibited ASCII characters or a control character, a part is over 1023 bytes, or the domain
    is not already lower-case ASCII labels.

    Raises :class:`TokenError` with ``kind == "jid"``.
    """
    local, domain = _split(jid)
    _check_prohibited(local, "localpart")
    if prepared:
        _check_size(local, "localpart")
        # Prosody's form of a host is already lower-case ASCII labels: a prepared JID's must be
        _check_domain(domain)
        return jid
    if not local.isascii():
        raise TokenError(
            "jid",
            "the JID's localpart is not ASCII and this library does not nodeprep: " + _PREPARED_HINT,
        )
    _check_size(local, "localpart")
    if not domain.isascii():
        raise TokenError(
            "jid",
            "the JID's domain is not ASCII: pass prepared=True with the JID as Prosody names "
            "the host (hmac-token jid NAME@HOST prints it)",
        )
    domain = domain.lower()
    _check_domain(domain)
    return local.lower() + "@" + domain


def _check_domain(domain: str) -> None:
    _check_size(domain, "domain")
    labels = domain.split(".")
    if any(not label or not set(label) <= _DOMAIN_LABEL_CHARS for label in labels):
        raise TokenError(
            "jid",
            "the JID's domain must be dot-separated, non-empty labels of a-z, 0-9 and '-' "
            "(no trailing dot)",
        )


# ---------------------------------------------------------------------------------------------
# OTP, nonce, MAC


def _totp(key: bytes, counter: int, digits: int) -> str:
    """RFC 4226 HOTP (HMAC-SHA1, dynamic truncation) of ``counter``, zero-padded."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def _random_nonce(nonce_digits: int) -> str:
    """``nonce_digits`` uniform decimal digits from the OS CSPRNG (bytes >= 250 are rejected)."""
    out: List[str] = []
    while len(out) < nonce_digits:
        for b in secrets.token_bytes(nonce_digits):
            if b < 250:
                out.append("0123456789"[b % 10])
                if len(out) == nonce_digits:
                    break
    return "".join(out)


def _check_nonce(nonce: object, nonce_digits: int) -> str:
    if (
        not isinstance(nonce, str)
        or len(nonce) != nonce_digits
        or not set(nonce) <= _ASCII_DIGITS
    ):
        raise TokenError("nonce", "the nonce must be exactly %d ASCII digits" % nonce_digits)
    return nonce


def _mac(key: bytes, public: str, jid: str) -> bytes:
    return hmac.new(key, (public + jid).encode("utf-8"), hashlib.sha256).digest()


def _signout_time(now: Optional[int]) -> int:
    if now is None:
        now = int(time.time())
    elif not _is_int(now) or not 1 <= now <= MAX_SIGNOUT_TIME:
        raise TokenError(
            "settings", "now must be an integer from 1 to 2^64-1 (UTC unix seconds) or None"
        )
    return now


def _signout_jid(jid: str) -> str:
    """The JID as Prosody names the account: a sign-out is never prepared for the caller, so that
    it names exactly the account the web app means (docs/signout.md, "The request"). What nodeprep
    would change or refuse in the localpart is refused here, as far as the standard library can
    tell; Prosody refuses the rest as malformed."""
    bare = signed_jid(jid, prepared=True)
    local = bare.split("@", 1)[0]
    for c in local:
        category = unicodedata.category(c)
        if category in ("Lu", "Lt"):  # nodeprep case-folds them
            raise TokenError(
                "jid",
                "the JID's localpart has upper-case letters: pass it as Prosody nodepreps it "
                "(lower case; hmac-token jid NAME@HOST prints it)",
            )
        if c.isspace() or category in ("Zs", "Zl", "Zp"):
            raise TokenError("jid", "the JID's localpart contains whitespace")
        if c in _MAPPED_TO_NOTHING or category in ("Cc", "Co", "Cs"):
            raise TokenError(
                "jid", "the JID's localpart contains a character nodeprep removes or refuses"
            )
    # RFC 3454 section 6: right-to-left text only, starting and ending with a right-to-left character
    if any(stringprep.in_table_d1(c) for c in local) and (
        any(stringprep.in_table_d2(c) for c in local)
        or not (stringprep.in_table_d1(local[0]) and stringprep.in_table_d1(local[-1]))
    ):
        raise TokenError(
            "jid", "the JID's localpart mixes right-to-left and left-to-right text, which nodeprep refuses"
        )
    return bare


def _signout_mac(key: bytes, t: int, nonce: str, jid: str) -> bytes:
    derived = hmac.new(key, _SIGNOUT_KEY_LABEL, hashlib.sha256).digest()
    j = jid.encode("utf-8")
    message = _SIGNOUT_LABEL + struct.pack(">Q", t) + nonce.encode("ascii") + struct.pack(">H", len(j)) + j
    return hmac.new(derived, message, hashlib.sha256).digest()


def _signout_timeout(timeout: object) -> float:
    if (
        not isinstance(timeout, (int, float))
        or isinstance(timeout, bool)
        or not math.isfinite(timeout)
        or not 0 < timeout <= 600
    ):
        raise TokenError("settings", "timeout must be a number of seconds, over 0 and at most 600")
    return float(timeout)


def _signout_target(url: object) -> Tuple[str, str, Optional[int], str]:
    """(scheme, host, port, path and query) of an http:// or https:// URL."""
    if not isinstance(url, str):
        raise TokenError("settings", "url must be a str")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise TokenError("settings", "url is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TokenError("settings", "url must be an http:// or https:// URL with a host")
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def _signout_host(host: object) -> Optional[str]:
    if host is not None and (not isinstance(host, str) or not host or any(not "!" <= c <= "~" for c in host)):
        raise TokenError("settings", "host must be a host name (printable ASCII, no space) or None")
    return host


def _post(url: str, body: str, timeout: float, host_header: str) -> None:
    """POST ``body`` as text/plain with ``Host: host_header``; returns when the answer is 200, else raises
    SignoutError. No redirect is followed and no proxy is used: the request goes to ``url`` itself."""
    scheme, host, port, path = _signout_target(url)
    where = "%s:%d" % (host, port or (443 if scheme == "https" else 80))
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body.encode("ascii"), headers={"Host": host_header, "Content-Type": "text/plain"})
        status = conn.getresponse().status  # the whole answer: its body is not read
    except (OSError, http.client.HTTPException) as e:
        # the exception's text names the failure (refused, timed out, certificate), never the body
        reason = "timed out after %g s" % timeout if isinstance(e, socket.timeout) else str(e) or type(e).__name__
        raise SignoutError("network", "the sign-out request to %s got no answer: %s" % (where, reason)) from None
    finally:
        conn.close()
    if status == 200:
        return
    if status == 403:
        raise SignoutError(
            "refused",
            "Prosody at %s refused the sign-out request (403); its log says why "
            "(stale: check this machine's clock; bad-signature: another token_secret)" % where,
            status,
        )
    if 500 <= status < 600:
        why = "Prosody could not complete it (its log says why): call signout again"
    else:  # 404: Prosody's answer when the path, the Host or token_signout is wrong
        why = "is the URL the auth_hmac/signout path, the Host the user's VirtualHost, and token_signout on?"
    raise SignoutError("http", "the sign-out request to %s got HTTP %d: %s" % (where, status, why), status)


# ---------------------------------------------------------------------------------------------
# Public API


def mint(
    jid: str,
    token_secret: Secret,
    otp_seed: str,
    now: Optional[int] = None,
    digits: int = 8,
    step: int = 30,
    nonce_digits: int = 32,
    prepared: bool = False,
    nonce: Optional[str] = None,
) -> str:
    """A token for ``jid`` (the JID the user logs in as; see :func:`signed_jid`).

    :param jid: the bare JID, e.g. ``"alice@example.org"`` (ASCII is lower-cased for you).
    :param token_secret: the plugin's ``token_secret``; the HMAC key is its UTF-8 bytes.
    :param otp_seed: the plugin's ``otp_seed`` (base32).
    :param now: UTC unix seconds, an integer; defaults to ``int(time.time())``.
    :param digits: OTP digits, 6 to 8 (the plugin's ``otp_digits``, default 8).
    :param step: OTP time step in seconds, 1 to 86400 (default 30).
    :param nonce_digits: nonce length, 16 to 64 (the plugin's ``token_nonce_digits``, default 32).
    :param prepared: ``jid`` is already exactly Prosody's form (needed for non-ASCII usernames).
    :param nonce: FOR TEST VECTORS ONLY: use this nonce instead of drawing one from the CSPRNG.
        A reused nonce makes a token the server refuses as a replay; never pass it in production.
    :raises TokenError: ``kind`` ``"settings"``, ``"jid"`` or ``"nonce"``.
    """
    _check_settings(digits, step, nonce_digits)
    t = _now(now)
    key = _secret_key(token_secret)
    seed = _seed_key(otp_seed)
    bare = signed_jid(jid, prepared)
    nonce = _random_nonce(nonce_digits) if nonce is None else _check_nonce(nonce, nonce_digits)
    public = _totp(seed, t // step, digits) + nonce
    return public + " " + base64.b64encode(_mac(key, public, bare)).decode("ascii")


def credentials(
    jid: str,
    token_secret: Secret,
    otp_seed: str,
    now: Optional[int] = None,
    digits: int = 8,
    step: int = 30,
    nonce_digits: int = 32,
    prepared: bool = False,
    nonce: Optional[str] = None,
) -> Dict[str, str]:
    """The ``credentials_url`` response body, ``{"jid": <signed JID>, "password": <token>}``.

    Serialise it with :func:`json.dumps` and send it with ``Cache-Control: no-store``. The
    options are those of :func:`mint`.
    """
    token = mint(
        jid,
        token_secret,
        otp_seed,
        now=now,
        digits=digits,
        step=step,
        nonce_digits=nonce_digits,
        prepared=prepared,
        nonce=nonce,
    )
    return {"jid": signed_jid(jid, prepared), "password": token}


def _secret_keys(token_secrets: object) -> List[bytes]:
    if isinstance(token_secrets, (str, bytes)):
        return [_secret_key(token_secrets)]
    if not isinstance(token_secrets, collections.abc.Iterable):
        raise TokenError("settings", "token_secrets must be a str or a list of str")
    keys = [_secret_key(s) for s in token_secrets]
    if not keys:
        raise TokenError("settings", "token_secrets is empty")
    return keys


def _parse(token: object, digits: int, nonce_digits: int) -> Optional[Tuple[str, str, bytes]]:
    """(OTP, public part, MAC) of a well-formed token, else None."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        return None
    if len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES:
        return None
    public, sep, b64 = token.partition(" ")
    if not sep or len(public) != digits + nonce_digits or not set(public) <= _ASCII_DIGITS:
        return None
    if len(b64) != _MAC_B64_LEN or not b64.endswith("=") or b64.endswith("=="):
        return None
    if not set(b64[:-1]) <= _B64_CHARS:
        return None
    try:
        mac = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(mac) != 32 or base64.b64encode(mac).decode("ascii") != b64:
        return None  # trailing bits set: not the canonical encoding
    return public[:digits], public, mac


def verify(
    token: str,
    jid: str,
    token_secrets: Union[Secret, Iterable[Secret]],
    otp_seed: str,
    now: Optional[int] = None,
    digits: int = 8,
    step: int = 30,
    skew: int = 1,
    nonce_digits: int = 32,
    host: Optional[str] = None,
    prepared: bool = False,
) -> Optional[str]:
    """Check ``token`` for a login as ``jid``: ``None`` if valid, else the reason.

    The reasons, checked in this order: ``"malformed"`` (not ``digits + nonce_digits`` ASCII
    digits, one space and 44 characters of canonical padded base64 of 32 bytes; over 1024 bytes;
    or a JID :func:`signed_jid` refuses), ``"wrong-host"`` (``host`` given and the JID's domain is
    another), ``"bad-signature"`` (no secret of ``token_secrets`` signed it for ``jid``; MACs are
    compared in constant time) and ``"expired"`` (the OTP is not that of a step within ``skew``
    steps of ``now``; compared in constant time).

    Stateless: there is no replay cache, so a token that verifies here may already have been used.
    The server refuses a replay; this function is for tests and tools, not for authentication.

    :param token_secrets: a secret or a list of them (all accepted, as during a rotation).
    :param skew: steps accepted either side of the current one, 0 to 10 (default 1).
    :raises TokenError: ``kind == "settings"`` for settings out of range or unusable secrets.
    """
    _check_settings(digits, step, nonce_digits)
    _check_range("skew", skew, SKEW_RANGE)
    t = _now(now)
    keys = _secret_keys(token_secrets)
    seed = _seed_key(otp_seed)

    parsed = _parse(token, digits, nonce_digits)
    if parsed is None:
        return "malformed"
    otp, public, mac = parsed
    try:
        bare = signed_jid(jid, prepared)
    except TokenError:
        return "malformed"

    if host is not None:
        domain = bare.split("@", 1)[1]
        same = domain == host or (
            domain.isascii() and host.isascii() and domain.lower() == host.lower()
        )
        if not same:
            return "wrong-host"

    signed = False
    for key in keys:  # no early exit: every secret is tried
        signed |= hmac.compare_digest(_mac(key, public, bare), mac)
    if not signed:
        return "bad-signature"

    counter = t // step
    fresh = False
    for c in range(max(0, counter - skew), counter + skew + 1):
        fresh |= hmac.compare_digest(_totp(seed, c, digits).encode("ascii"), otp.encode("ascii"))
    if not fresh:
        return "expired"
    return None


def signout_request(
    jid: str,
    token_secret: Secret,
    now: Optional[int] = None,
    nonce: Optional[str] = None,
) -> str:
    """The sign-out request for ``jid``: one line, ``v1 TIME NONCE JID MAC`` (docs/signout.md).

    :func:`signout` builds and sends it; this is for a web app that sends it its own way.
    It is valid for 60 s and once: do not log it.

    :param jid: the bare JID exactly as Prosody names the account: the localpart nodeprep'd
        (lower case; ``hmac-token jid NAME@HOST`` prints it) and the host the VirtualHost's name.
        Unlike :func:`mint`, nothing is lower-cased for you: a JID with an upper-case letter in
        its localpart, a ``/``, whitespace, a character nodeprep removes (a soft hyphen, a
        zero-width space) or refuses (a control or private-use character, right-to-left text
        mixed with left-to-right), a part over 1023 bytes, or anything :func:`signed_jid` refuses
        with ``prepared=True`` is refused. Prosody's nodeprep is not reimplemented: what else it
        would change, Prosody refuses as malformed.
    :param token_secret: the plugin's ``token_secret``; the key is derived from its UTF-8 bytes.
    :param now: UTC unix seconds, an integer from 1 to 2^64-1; defaults to ``int(time.time())``.
    :param nonce: FOR TEST VECTORS ONLY: 32 ASCII digits instead of 32 from the CSPRNG. Prosody
        refuses a nonce it accepted in the last 60 s as a replay.
    :raises TokenError: ``kind`` ``"settings"``, ``"jid"`` or ``"nonce"``.
    """
    t = _signout_time(now)
    key = _secret_key(token_secret)
    bare = _signout_jid(jid)
    if nonce is None:
        nonce = _random_nonce(SIGNOUT_NONCE_DIGITS)
    else:
        nonce = _check_nonce(nonce, SIGNOUT_NONCE_DIGITS)
    mac = base64.b64encode(_signout_mac(key, t, nonce, bare)).decode("ascii")
    return "v1 %d %s %s %s" % (t, nonce, bare, mac)


def signout(
    url: str,
    jid: str,
    token_secret: Secret,
    now: Optional[int] = None,
    timeout: float = SIGNOUT_TIMEOUT,
    host: Optional[str] = None,
) -> None:
    """Signs ``jid`` out of the chat: POSTs :func:`signout_request` to Prosody's sign-out endpoint.

    Returns when Prosody accepted it: every session of the user has ended and every token minted
    before ``now`` (to its OTP step) is refused. Call it on logout, account lock and password
    reset. It is not retried here: a new call makes a new request (a fresh nonce).

    :param url: Prosody's endpoint, e.g. ``"http://127.0.0.1:5280/auth_hmac/signout"``
        (http:// or https://, whose certificate is verified; no proxy, no redirect).
    :param jid: as for :func:`signout_request`.
    :param token_secret: the plugin's ``token_secret``.
    :param now: as for :func:`signout_request`.
    :param timeout: seconds to wait to connect and for each read of the answer (default 5).
    :param host: the ``Host`` header; by default the JID's domain, the VirtualHost whose user
        this is, by which Prosody routes the request (``http://127.0.0.1:5280/...`` works so
        without ``http_default_host``). Pass the name a reverse proxy in between routes by.
    :raises TokenError: ``kind`` ``"settings"`` or ``"jid"``: nothing was sent.
    :raises SignoutError: Prosody did not accept it (``kind`` ``"refused"``, ``"http"`` or
        ``"network"``); the user may still be signed in.
    """
    seconds = _signout_timeout(timeout)
    header = _signout_host(host)
    _signout_target(url)  # a bad URL is the caller's error, found before anything is built
    line = signout_request(jid, token_secret, now=now)
    _post(url, line, seconds, header or line.split(" ")[3].split("@", 1)[1])


# ---------------------------------------------------------------------------------------------
# Prebind (docs/prebind.md)

#: Seconds :func:`prebind` may take in all, by default; the BOSH ``wait`` it asks for.
PREBIND_TIMEOUT = 10.0
PREBIND_WAIT = 10
#: Empty answers in a row :func:`prebind` polls past before it gives up.
PREBIND_MAX_POLLS = 5
#: The largest BOSH answer read, in bytes.
PREBIND_MAX_ANSWER = 1 << 20
_SERVER_NONCE_LEN = 24
_SASL_MECHANISM = "SASL-HMAC"
_NS_BOSH = "http://jabber.org/protocol/httpbind"
_NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
_NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
_MAX_TRIED = 1 << 16

class PrebindSession(TypedDict):
    """What :func:`prebind` returns, for converse.js's ``prebind_url`` (as JSON)."""

    jid: str  #: the bound full JID
    sid: str
    rid: int  #: the next request id: the browser's first request uses it


#: (BOSH body, seconds left) -> (HTTP status, answer body); raises OSError when there is no answer.
Transport = Callable[[bytes, float], Tuple[int, bytes]]

# SHA-256 of the public parts of the tokens this process has sent: SASL-HMAC has no client nonce,
# so an impostor that recorded one exchange could answer a second one with the same token, and a
# token is never sent twice (docs/sasl-hmac.md). Oldest first; past _MAX_TRIED the oldest are
# forgotten (their tokens expired long before, at any rate a web app can prebind).
_tried: Dict[bytes, None] = {}
_tried_lock = threading.Lock()


class _DeadlineSocket:
    """A connected socket whose every send and read waits at most until the deadline: a server that
    trickles its answer a byte at a time cannot hold the call past it (a socket timeout alone bounds
    each read, not the exchange)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        # as socket.socket does: http.client closes the connection before reading an HTTP/1.0
        # answer's body through the file, so the socket is closed when both are
        self.files = 0
        self.closed = False

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self.sock.sendall(data)

    def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self.sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode: str = "rb", buffering: Optional[int] = None) -> io.BufferedReader:
        self.files += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"))  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:  # what socket.SocketIO calls on close
        self.files -= 1
        if self.closed and self.files <= 0:
            self.sock.close()

    def close(self) -> None:
        self.closed = True
        if self.files <= 0:
            self.sock.close()


class _DeadlineConnection(http.client.HTTPConnection):
    """http.client on a _DeadlineSocket (https:// with a verified certificate); no proxy, no tunnel."""

    def __init__(self, host: str, port: Optional[int], tls: bool, deadline: float) -> None:
        super().__init__(host, port or (443 if tls else 80))
        self.tls = tls
        self.deadline = deadline

    def connect(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        sock = socket.create_connection((self.host, self.port), timeout=left)
        try:
            if self.tls:  # the handshake's reads share one timeout in all (CPython's ssl module)
                sock.settimeout(max(self.deadline - time.monotonic(), 0.001))
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(sock, self.deadline)


def _http_transport(url: str) -> Transport:
    scheme, host, port, path = _signout_target(url)
    where = "%s:%d" % (host, port or (443 if scheme == "https" else 80))

    def post(body: bytes, seconds: float) -> Tuple[int, bytes]:
        conn = _DeadlineConnection(host, port, scheme == "https", time.monotonic() + seconds)
        r: Optional[http.client.HTTPResponse] = None
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
            r = conn.getresponse()
            data = r.read(PREBIND_MAX_ANSWER + 1)
            return r.status, data
        except socket.timeout:
            raise OSError("timed out at %s" % where) from None
        except http.client.HTTPException as e:
            # its text may be the server's (a bad status line holds it): only the kind is told
            raise OSError("%s: %s" % (where, type(e).__name__)) from None
        except OSError as e:
            raise OSError("%s: %s" % (where, str(e) or type(e).__name__)) from None
        finally:
            if r is not None:
                r.close()  # an answer over the limit is not read to its end
            conn.close()

    return post


class _Session:
    """The client's side of one BOSH session: request ids, the deadline, what Prosody answers."""

    def __init__(self, transport: Transport, timeout: float, wait: int) -> None:
        self.transport = transport
        self.deadline = time.monotonic() + timeout
        self.wait = wait
        self.rid = secrets.randbelow(2**40) + 2**20  # room to count up within 2^53 (XEP-0124 section 7)
        self.sid: Optional[str] = None

    def post(self, inner: str = "", **attrs: str) -> ET.Element:
        """One request; returns the answer's <body/>."""
        attrs["rid"] = str(self.rid)
        if self.sid is not None:
            attrs["sid"] = self.sid
        self.rid += 1
        head = " ".join("%s=%s" % (k.replace("_", ":"), quoteattr(v)) for k, v in attrs.items())
        data = ("<body xmlns='%s' %s>%s</body>" % (_NS_BOSH, head, inner)).encode("utf-8")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise PrebindError("transport", "Prosody did not complete the login in time")
        try:
            status, answer = self.transport(data, left)
        except OSError as e:
            raise PrebindError("transport", "no answer from Prosody (%s)" % _printable(str(e))) from None
        if status != 200:
            raise PrebindError("transport", "Prosody answered HTTP %d: is the URL its BOSH endpoint?" % status)
        if len(answer) > PREBIND_MAX_ANSWER:
            raise PrebindError("transport", "Prosody's answer is over %d bytes" % PREBIND_MAX_ANSWER)
        body = _parse_answer(answer)
        if body.tag != "{%s}body" % _NS_BOSH:
            raise PrebindError("transport", "Prosody's answer is not a BOSH body")
        if body.get("type") == "terminate":
            raise PrebindError(
                "transport", "Prosody terminated the BOSH session (%s)" % _printable(body.get("condition") or "no condition")
            )
        return body

    def next_element(self, body: ET.Element) -> ET.Element:
        """The first child of this answer, or of the next answer with one."""
        polls = 0
        while len(body) == 0:
            if polls == PREBIND_MAX_POLLS:
                raise PrebindError("transport", "Prosody sent nothing in %d polls" % polls)
            polls += 1
            body = self.post()
        return body[0]


class _Refused(Exception):
    """What the answer's reader raises from an expat handler: something a BOSH answer never holds."""


def _refuse(what: str) -> Callable[..., None]:
    def handler(*args: object) -> None:
        raise _Refused(what)

    return handler


def _parse_answer(answer: bytes) -> ET.Element:
    """The answer's root element. Only UTF-8 is read (expat is told so whatever the answer declares),
    and no DOCTYPE, entity or notation declaration, comment or processing instruction is accepted:
    entities are never declared, so never expanded, whatever the encoding."""
    if answer.startswith(b"\xef\xbb\xbf"):
        answer = answer[3:]
    try:
        answer.decode("utf-8")
    except UnicodeDecodeError:
        raise PrebindError("transport", "Prosody's answer is not UTF-8") from None
    if b"\0" in answer:  # UTF-16 or UTF-32 without a byte order mark is valid UTF-8
        raise PrebindError("transport", "Prosody's answer is not UTF-8")
    builder = ET.TreeBuilder()

    def xml_decl(version: Optional[str], encoding: Optional[str], standalone: int) -> None:
        if encoding is not None and encoding.lower() not in ("utf-8", "utf8"):
            raise _Refused("an XML declaration naming another encoding than UTF-8")

    def start(tag: str, attrs: Dict[str, str]) -> None:
        builder.start(_clark(tag), {_clark(k): v for k, v in attrs.items()})

    def end(tag: str) -> None:
        builder.end(_clark(tag))

    parser = xml.parsers.expat.ParserCreate("UTF-8", "}")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.XmlDeclHandler = xml_decl
    parser.StartDoctypeDeclHandler = _refuse("a DOCTYPE")
    parser.EntityDeclHandler = _refuse("an entity declaration")
    parser.UnparsedEntityDeclHandler = _refuse("an entity declaration")
    parser.NotationDeclHandler = _refuse("a notation declaration")
    parser.CommentHandler = _refuse("a comment")
    parser.ProcessingInstructionHandler = _refuse("a processing instruction")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(answer, True)
        return builder.close()
    except _Refused as e:
        raise PrebindError("transport", "Prosody's answer has %s" % e) from None
    except (xml.parsers.expat.ExpatError, ValueError, LookupError, RecursionError):
        raise PrebindError("transport", "Prosody's answer is not XML") from None


def _clark(name: str) -> str:
    """expat's "namespace}local" as ElementTree's "{namespace}local"."""
    return "{" + name if "}" in name else name


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text[:64])


def _sasl_proof(s: bytes, label: bytes, client_first: bytes, server_nonce: bytes) -> bytes:
    return hmac.new(s, label + b"\0" + client_first + b"\0" + server_nonce, hashlib.sha256).digest()


def _b64_payload(el: ET.Element) -> bytes:
    try:
        return base64.b64decode((el.text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PrebindError("transport", "Prosody's %s is not base64" % el.tag.split("}")[-1]) from None


def _sasl_condition(el: ET.Element) -> Optional[str]:
    if el.tag != "{%s}failure" % _NS_SASL:
        return None
    for child in el:
        if child.tag.startswith("{%s}" % _NS_SASL) and child.tag != "{%s}text" % _NS_SASL:
            return _printable(child.tag.split("}")[1])
    return "failure"


class _Secret:
    """S, the token's secret half, in an object whose repr hides it: an error tracker that records
    the locals of a traceback's frames records "<secret>"."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def _split_prebind_token(token: object) -> Tuple[bytes, _Secret]:
    """(public part, S) of a token; TokenError("token") if it is not one."""
    if not isinstance(token, str):
        raise TokenError("token", "the token must be a str")
    public, sep, b64 = token.partition(" ")
    s = b""
    try:
        if (
            not sep
            or not 16 + 6 <= len(public) <= 64 + 8
            or not set(public) <= _ASCII_DIGITS
            or len(b64) != _MAC_B64_LEN
            or not set(b64.rstrip("=")) <= _B64_CHARS
        ):
            raise TokenError("token", "not a token (OTP and nonce digits, a space, 44 characters of base64)")
        try:
            s = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            s = b""
        if len(s) != 32 or base64.b64encode(s).decode("ascii") != b64:
            raise TokenError("token", "not a token (OTP and nonce digits, a space, 44 characters of base64)")
        return public.encode("ascii"), _Secret(s)
    finally:  # no frame of a traceback holds S
        token = b64 = ""
        s = b""


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in ipaddress.IPv4Network("127.0.0.0/8")
    return address == ipaddress.IPv6Address("::1")


def _check_bosh_url(url: object, insecure_http: object) -> None:
    """https://, or http:// to loopback: the SASL-HMAC proof covers neither the sid nor the bind
    result, so anyone on the path of a plain http:// URL could hand the web app a session of their
    choosing (docs/prebind.md). ``insecure_http=True`` allows http:// elsewhere."""
    if not isinstance(insecure_http, bool):
        raise TokenError("settings", "insecure_http must be a bool")
    scheme, host, _, _ = _signout_target(url)
    if scheme == "http" and not insecure_http and not _is_loopback(host):
        raise TokenError(
            "settings",
            "http:// is allowed to a loopback address only (127.0.0.0/8, ::1, localhost): use https://, "
            "or pass insecure_http=True on a network nobody else is on",
        )


def prebind(
    bosh_url: str,
    jid: str,
    token: str,
    timeout: float = PREBIND_TIMEOUT,
    resource: Optional[str] = None,
    prepared: bool = False,
    transport: Optional[Transport] = None,
    insecure_http: bool = False,
) -> PrebindSession:
    """Opens a BOSH session logged in as ``jid`` with ``token``, for converse.js's ``prebind_url``.

    It creates the session, logs in with SASL-HMAC (never anything else: the token's secret half
    is never sent), checks Prosody's proof that it holds the token secret, binds a resource and
    checks that the bound JID is ``jid``'s. Returns ``{"jid": full JID, "sid": ..., "rid": the next
    request id}``: answer the browser's ``prebind_url`` request with it as JSON, with
    ``Cache-Control: no-store``. The browser must attach within Prosody's ``bosh_max_inactivity``
    (60 s by default): open a session for each request, never from a cache.

    A token is sent once: a token this process has tried before is refused before anything is
    sent (mint one per call: ``prebind(url, jid, mint(jid, secret, seed))``).

    :param bosh_url: Prosody's BOSH endpoint itself (``http://127.0.0.1:5280/http-bind``, or
        https:// with a verified certificate), not the proxy browsers reach; no proxy, no redirect.
        http:// only to a loopback address (127.0.0.0/8, ::1, localhost), unless ``insecure_http``.
    :param jid: the bare JID the token was minted for (as for :func:`mint`).
    :param token: a token from :func:`mint`.
    :param timeout: seconds the whole login may take, over 0 and at most 600 (default 10).
    :param resource: the resource to ask for; by default Prosody chooses one.
    :param prepared: as for :func:`mint`.
    :param transport: FOR TESTS, or to post through another HTTP client: called with each BOSH
        request body and the seconds left, returns (HTTP status, answer body), raises OSError
        when there is no answer. The URL is checked all the same.
    :param insecure_http: allow an http:// URL whose host is not a loopback address. Nothing
        authenticates the BOSH session itself (the proof covers neither the sid nor the bound JID):
        anyone on that network path could hand the web app a session of their choosing.
    :raises TokenError: ``kind`` ``"settings"``, ``"jid"`` or ``"token"`` (not a token, or one
        this process has tried): nothing was sent.
    :raises PrebindError: ``kind`` ``"refused"`` (with ``condition``), ``"unproven"`` or
        ``"transport"``.
    """
    try:
        public, s = _split_prebind_token(token)
    finally:  # no frame of a traceback holds S
        token = ""
    seconds = _signout_timeout(timeout)
    bare = signed_jid(jid, prepared)
    if resource is not None and (not isinstance(resource, str) or not resource or _has_control(resource)
                                 or not _encodes(resource)):
        raise TokenError("settings", "resource must be a non-empty str (UTF-8, no control characters), or None")
    _check_bosh_url(bosh_url, insecure_http)
    if transport is None:
        transport = _http_transport(bosh_url)
    elif not callable(transport):
        raise TokenError("settings", "transport must be callable")
    tag = hashlib.sha256(public).digest()
    with _tried_lock:
        if tag in _tried:
            raise TokenError("token", "this token was tried before: mint a new one for each prebind")
        _tried[tag] = None
        while len(_tried) > _MAX_TRIED:
            del _tried[next(iter(_tried))]
    return _prebind(_Session(transport, seconds, min(PREBIND_WAIT, math.ceil(seconds))), bare, public, s, resource)


def _encodes(text: str) -> bool:
    """Whether ``text`` is UTF-8-encodable (a lone surrogate is not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _prebind(bosh: _Session, bare: str, public: bytes, s: _Secret, resource: Optional[str]) -> PrebindSession:
    local, domain = bare.split("@", 1)
    body = bosh.post(to=domain, xml_lang="en", ver="1.6", wait=str(bosh.wait), hold="1",
                     content="text/xml; charset=utf-8", xmlns_xmpp="urn:xmpp:xbosh", xmpp_version="1.0")
    sid = body.get("sid")
    if not sid:
        raise PrebindError("transport", "Prosody did not open a BOSH session (no sid)")
    bosh.sid = sid
    features = bosh.next_element(body)
    offered = [m.text or "" for m in features.findall("{%s}mechanisms/{%s}mechanism" % (_NS_SASL, _NS_SASL))]
    if _SASL_MECHANISM not in offered:  # never another: PLAIN would send the whole token
        raise PrebindError(
            "unproven",
            "the server does not offer %s (it offers: %s): is this the Prosody that holds token_secret?"
            % (_SASL_MECHANISM, ", ".join(_printable(m) for m in offered[:8]) or "none"),
        )

    client_first = b"\0" + local.encode("utf-8") + b"\0" + public
    el = bosh.next_element(bosh.post("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (
        _NS_SASL, _SASL_MECHANISM, base64.b64encode(client_first).decode("ascii"))))
    condition = _sasl_condition(el)
    if condition is not None:
        raise PrebindError("refused", "Prosody refused the login: %s" % condition, condition)
    if el.tag != "{%s}challenge" % _NS_SASL:
        raise PrebindError("unproven", "the server answered the login with a %s, not a challenge" % _printable(el.tag.split("}")[-1]))
    server_nonce = _b64_payload(el)
    if len(server_nonce) != _SERVER_NONCE_LEN:
        raise PrebindError("transport", "Prosody's challenge is not %d octets" % _SERVER_NONCE_LEN)

    proof = base64.b64encode(_sasl_proof(s.value, b"SASL-HMAC client", client_first, server_nonce)).decode("ascii")
    el = bosh.next_element(bosh.post("<response xmlns='%s'>%s</response>" % (_NS_SASL, proof)))
    condition = _sasl_condition(el)
    if condition is not None:
        raise PrebindError("refused", "Prosody refused the login: %s" % condition, condition)
    if el.tag != "{%s}success" % _NS_SASL:
        raise PrebindError("unproven", "the server answered the proof with a %s, not success" % _printable(el.tag.split("}")[-1]))
    try:
        got = base64.b64decode((el.text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        got = b""
    # the session is never used unproven; the expected proof is in no local (a traceback's frames)
    if not hmac.compare_digest(got, _sasl_proof(s.value, b"SASL-HMAC server", client_first, server_nonce)):
        raise PrebindError("unproven", "the server could not prove that it holds the token secret")

    features = bosh.next_element(bosh.post(to=domain, xml_lang="en", xmpp_restart="true", xmlns_xmpp="urn:xmpp:xbosh"))
    if features.find("{%s}bind" % _NS_BIND) is None:
        raise PrebindError("transport", "Prosody offered no resource binding")
    res = "<resource>%s</resource>" % escape(resource) if resource else ""
    el = bosh.next_element(bosh.post("<iq xmlns='jabber:client' type='set' id='prebind_1'><bind xmlns='%s'>%s</bind></iq>" % (_NS_BIND, res)))
    full = el.findtext("{%s}bind/{%s}jid" % (_NS_BIND, _NS_BIND))
    if el.tag != "{jabber:client}iq" or el.get("type") != "result" or not full:
        raise PrebindError("transport", "Prosody did not bind a resource")
    if not (full.startswith(bare + "/") and len(full) > len(bare) + 1):  # the token's user, or no session
        raise PrebindError("unproven", "the server bound another JID than the token's")
    return {"jid": full, "sid": sid, "rid": bosh.rid}
