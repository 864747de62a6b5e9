"""Debian's nginx and apache2 in front of Prosody and the example web app, run from examples/nginx/
and examples/apache/ as shipped: only names, ports and certificate paths are filled in, and time
values are divided by `scale` (the tests keep the ratios of the real values, not the minutes).
Started on 127.0.0.1 with ports the harness picks, stopped by PID.

Variants (negative controls), each derived from the shipped file:
  plain_http=True        the HTTPS site served over plain HTTP without X-Forwarded-Proto
  ws_timeout_ms=N        the WebSocket timeout replaced (e.g. by the server's 60 s default, scaled)
  bosh_timeout_ms=N      the BOSH timeout replaced (e.g. below bosh_max_wait)
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import REPO, free_port, listening, stop_process

NGINX_SITE = REPO / "examples" / "nginx" / "chat.example.org.conf"
NAME = "chat.test"  # the tests map it to 127.0.0.1 (HOST_RESOLVER_RULES for Chromium)


def _sub(text, old, new, count=1):
    if text.count(old) != count:
        raise AssertionError("examples changed: %r occurs %d times, expected %d" % (old, text.count(old), count))
    return text.replace(old, new)


def _scale_times(text, scale):
    """nginx time values ("90s") divided by scale, in milliseconds."""
    return re.sub(r"(_timeout) (\d+)s;", lambda m: "%s %dms;" % (m.group(1), int(m.group(2)) * 1000 // scale), text)


def _location(text, path):
    """(start, end) of the `location PATH { ... }` block."""
    start = text.index("\tlocation %s {" % path)
    return start, text.index("\n\t}", start) + 3


class Proxy:
    kind = None
    dir = None
    proc = None
    https_port = http_port = 0
    scheme = "https"
    name = NAME

    @property
    def origin(self):
        return "%s://%s:%d" % (self.scheme, self.name, self.https_port)

    @property
    def access_log(self):
        p = self.dir / "access.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def command(self):
        raise NotImplementedError

    def start(self, timeout=10):
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "wb"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s %s" % (self.kind, (self.dir / "stderr.log").read_text(),
                                                         (self.dir / "error.log").read_text() if (self.dir / "error.log").exists() else ""))
            if listening(self.https_port):
                return self
            time.sleep(0.05)
        raise RuntimeError("%s did not listen" % self.kind)

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def make_proxy(kind, *args, **kw):
    return {"nginx": Nginx, "apache": Apache}[kind](*args, **kw)


class Nginx(Proxy):
    kind = "nginx"

    def __init__(self, prosody_http_port, webapp_port, cert, key, scale=1, plain_http=False, ws_timeout_ms=None,
                 bosh_timeout_ms=None, name=NAME):
        self.name = name
        overrides = {}
        if ws_timeout_ms is not None:
            overrides["/xmpp-websocket"] = {"proxy_read_timeout": "%dms" % ws_timeout_ms, "proxy_send_timeout": None}
        if bosh_timeout_ms is not None:
            overrides["/http-bind"] = {"proxy_read_timeout": "%dms" % bosh_timeout_ms}
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.https_port, self.http_port = free_port(), free_port()
        site = NGINX_SITE.read_text()
        # The upstreams first: a listen port the harness picks (e.g. 52801) contains "5280".
        site = _sub(site, "127.0.0.1:5280", "127.0.0.1:%d" % prosody_http_port, count=2)
        site = _sub(site, "127.0.0.1:8080", "127.0.0.1:%d" % webapp_port)
        site = _sub(site, "listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % self.https_port)
        site = _sub(site, "listen 80;", "listen 127.0.0.1:%d;" % self.http_port)
        site = _sub(site, "return 301 https://$host$request_uri;", "return 301 https://$host:%d$request_uri;" % self.https_port)
        site = _sub(site, "chat.example.org", name, count=site.count("chat.example.org"))
        site = _sub(site, "/etc/letsencrypt/live/%s/fullchain.pem" % name, str(cert))
        site = _sub(site, "/etc/letsencrypt/live/%s/privkey.pem" % name, str(key))
        for path, directives in (overrides or {}).items():
            start, end = _location(site, path)
            block = site[start:end]
            for directive, value in directives.items():
                pattern = re.compile(r"\n\t\t%s [^;]*;" % re.escape(directive))
                if value is None:
                    block, n = pattern.subn("", block)
                elif pattern.search(block):
                    block, n = pattern.subn("\n\t\t%s %s;" % (directive, value), block)
                else:
                    block, n = block.replace("{\n", "{\n\t\t%s %s;\n" % (directive, value), 1), 1
                assert n >= 1, (path, directive)
            site = site[:start] + block + site[end:]
        if plain_http:
            # the HTTPS server without TLS and without X-Forwarded-Proto, on the plain port
            site = _sub(site, "\tproxy_set_header X-Forwarded-Proto $scheme;\n", "", count=2)
            site = _sub(site, "listen 127.0.0.1:%d ssl;" % self.https_port, "listen 127.0.0.1:%d;" % self.https_port)
            site = re.sub(r"\n\tssl_[a-z_]+ [^;]*;", "", site)
        self.scheme = "http" if plain_http else "https"
        site = _scale_times(site, scale)
        (self.dir / "site.conf").write_text(site)
        (self.dir / "nginx.conf").write_text(
            "daemon off;\nmaster_process off;\nuser root;\npid %(d)s/nginx.pid;\nerror_log %(d)s/error.log info;\n"
            "events { worker_connections 512; }\n"
            "http {\n\taccess_log %(d)s/access.log;\n\tclient_body_temp_path %(d)s/body;\n"
            "\tproxy_temp_path %(d)s/proxy;\n\tfastcgi_temp_path %(d)s/fastcgi;\n\tuwsgi_temp_path %(d)s/uwsgi;\n"
            "\tscgi_temp_path %(d)s/scgi;\n\tinclude %(d)s/site.conf;\n}\n" % {"d": self.dir})
        self.site = site

    def command(self):
        return ["/usr/sbin/nginx", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)]


APACHE_SITE = REPO / "examples" / "apache" / "chat.example.org.conf"
class Apache(Proxy):
    kind = "apache"

    def __init__(self, prosody_http_port, webapp_port, cert, key, scale=1, plain_http=False, ws_timeout_ms=None,
                 bosh_timeout_ms=None, name=NAME):
        self.name = name
        # Apache's own Timeout (60 s) is the default for everything the site does not set: scaled too
        server_timeout = max(1, 60 // scale)
        self.dir = Path(tempfile.mkdtemp(prefix="apache-"))
        os.chmod(self.dir, 0o755)
        self.https_port, self.http_port = free_port(), free_port()
        site = APACHE_SITE.read_text()
        # The upstreams first: a listen port the harness picks (e.g. 52801) contains "5280".
        site = _sub(site, "127.0.0.1:5280", "127.0.0.1:%d" % prosody_http_port, count=3)
        site = _sub(site, "127.0.0.1:8080", "127.0.0.1:%d" % webapp_port, count=2)
        site = _sub(site, "<VirtualHost *:443>", "<VirtualHost 127.0.0.1:%d>" % self.https_port)
        site = _sub(site, "<VirtualHost *:80>", "<VirtualHost 127.0.0.1:%d>" % self.http_port)
        site = _sub(site, "Redirect permanent / https://chat.example.org/",
                    "Redirect permanent / https://chat.example.org:%d/" % self.https_port)
        site = _sub(site, "chat.example.org", name, count=site.count("chat.example.org"))
        site = _sub(site, "/etc/letsencrypt/live/%s/fullchain.pem" % name, str(cert))
        site = _sub(site, "/etc/letsencrypt/live/%s/privkey.pem" % name, str(key))
        site = re.sub(r"timeout=(\d+)", lambda m: "timeout=%d" % max(1, int(m.group(1)) // scale), site)
        if ws_timeout_ms is not None:
            site = re.sub(r"(ProxyPass /xmpp-websocket \S+) timeout=\d+", r"\1 timeout=%d" % (ws_timeout_ms // 1000), site)
        if bosh_timeout_ms is not None:
            site = re.sub(r"(ProxyPass /http-bind \S+) timeout=\d+", r"\1 timeout=%d" % (bosh_timeout_ms // 1000), site)
        if plain_http:
            site = _sub(site, "\tRequestHeader set X-Forwarded-Proto \"https\"\n", "")
            site = re.sub(r"\n\tSSL[A-Za-z]+ [^\n]*", "", site)
        self.scheme = "http" if plain_http else "https"
        (self.dir / "site.conf").write_text(site)
        mods = "".join("LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n" % (m, m)
                       for m in ["mpm_event", "authz_core", "alias", "headers", "proxy", "proxy_http",
                                 "proxy_wstunnel", "ssl", "socache_shmcb"])
        (self.dir / "apache2.conf").write_text(
            "ServerRoot %(d)s\nServerName localhost\nTimeout %(timeout)d\nPidFile %(d)s/apache.pid\n%(mods)s"
            "Listen 127.0.0.1:%(https)d\nListen 127.0.0.1:%(http)d\nUser www-data\nGroup www-data\n"
            "ErrorLog %(d)s/error.log\nLogLevel warn\nLogFormat \"%%h - - %%t \\\"%%r\\\" %%>s %%b\" simple\n"
            "CustomLog %(d)s/access.log simple\nSSLSessionCache shmcb:%(d)s/ssl_scache(512000)\n"
            "Mutex file:%(d)s default\nInclude %(d)s/site.conf\n"
            % {"d": self.dir, "mods": mods, "https": self.https_port, "http": self.http_port, "timeout": server_timeout})
        self.site = site

    def command(self):
        return ["/usr/sbin/apache2", "-f", str(self.dir / "apache2.conf"), "-DFOREGROUND"]


def tls_context():
    """A client context that verifies nothing (the harness's self-signed certificates)."""
    from rawxmpp import unverified_tls_context
    return unverified_tls_context()


def client_socket(port, tls, source="127.0.0.23", timeout=15, name=NAME):
    """A TCP (TLS) connection to 127.0.0.1:port from the loopback address `source`."""
    import socket
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    return tls_context().wrap_socket(sock, server_hostname=name) if tls else sock


def bosh_client(port, tls, domain, source="127.0.0.23", headers=None):
    """rawxmpp's BOSH client, its requests sent from `source` (with extra `headers`)."""
    import http.client

    import rawxmpp

    class ProxiedBosh(rawxmpp.Bosh):
        statuses = []

        def _exchange(self, text):
            cls = http.client.HTTPSConnection if tls else http.client.HTTPConnection
            kw = {"context": tls_context()} if tls else {}
            conn = cls("127.0.0.1", port, timeout=self.timeout, source_address=(source, 0), **kw)
            try:
                conn.request("POST", "/http-bind", body=text.encode("utf-8"),
                             headers={"Host": "%s:%d" % (NAME, port), "Content-Type": "text/xml; charset=utf-8",
                                      **(headers or {})})
                resp = conn.getresponse()
                raw = resp.read()
            finally:
                conn.close()
            self.statuses.append(resp.status)
            return resp.status, raw

    return ProxiedBosh("https://%s:%d/http-bind" % (NAME, port), domain)


def websocket_client(port, tls, domain, source="127.0.0.23", name=NAME, headers=None):
    """rawxmpp's WebSocket client, connected from `source` (its handshake with extra `headers`)."""
    import websocket

    import rawxmpp

    class ProxiedWebSocket(rawxmpp.WebSocket):
        def __init__(self):
            self.domain = domain
            self.ws = websocket.create_connection("%s://%s:%d/xmpp-websocket" % ("wss" if tls else "ws", name, port),
                                                  subprotocols=["xmpp"], socket=client_socket(port, tls, source, name=name),
                                                  header=["%s: %s" % kv for kv in (headers or {}).items()])
            self.closed = False
            self._open()

    return ProxiedWebSocket()


def spki_sha256(cert):
    """base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's --ignore-certificate-errors-spki-list)."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True).stdout
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha256(der).digest()).decode()
