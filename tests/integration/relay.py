"""A man in the middle for the channel-binding tests: it terminates the client's STARTTLS with a
certificate of its own, opens its own STARTTLS connection to the real server, and from then on
passes every byte through unchanged. It holds no secret; it only relays. Whoever logs in through it
leaves the session in the relay's hands."""
import re
import select
import socket
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

NS_TLS = b"urn:ietf:params:xml:ns:xmpp-tls"


class _Reader:
    """Reads a plain socket up to a pattern, keeping what came after it for the next read (a client
    may send its stream header and <starttls/> in one packet)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def until(self, pattern):
        while True:
            m = re.search(pattern, self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data


class Relay:
    def __init__(self, server_port, domain, tls_max=ssl.TLSVersion.TLSv1_2):
        self.server_port, self.domain, self.tls_max = server_port, domain, tls_max
        self.dir = Path(tempfile.mkdtemp(prefix="relay-"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(self.dir / "k.pem"), "-out", str(self.dir / "c.pem"), "-subj", "/CN=%s" % domain],
                       check=True, capture_output=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.relayed = 0  # bytes passed on after both TLS legs were up
        self.stage = "listening"  # how far the relay got, for a failing test's message
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            client, _ = self.sock.accept()
        except OSError:
            return
        client.settimeout(15)
        self.stage = "accepted"
        try:
            from_client = _Reader(client)
            from_client.until(rb"<stream:stream[^>]*>")
            client.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                           b"xmlns:stream='http://etherx.jabber.org/streams' id='relay' from='%s' version='1.0'>"
                           b"<stream:features><starttls xmlns='%s'><required/></starttls></stream:features>"
                           % (self.domain.encode(), NS_TLS))
            from_client.until(rb"<starttls[^>]*/>|</starttls>")
            client.sendall(b"<proceed xmlns='%s'/>" % NS_TLS)
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.load_cert_chain(self.dir / "c.pem", self.dir / "k.pem")
            server_ctx.maximum_version = self.tls_max
            a = server_ctx.wrap_socket(client, server_side=True)
            self.stage = "client TLS up"

            upstream = socket.create_connection(("127.0.0.1", self.server_port), timeout=15)
            upstream.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                             b"xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>" % self.domain.encode())
            from_server = _Reader(upstream)
            from_server.until(rb"</stream:features>")
            upstream.sendall(b"<starttls xmlns='%s'/>" % NS_TLS)
            from_server.until(rb"<proceed[^>]*>")
            client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client_ctx.check_hostname = False
            client_ctx.verify_mode = ssl.CERT_NONE
            client_ctx.maximum_version = self.tls_max
            b = client_ctx.wrap_socket(upstream, server_hostname=self.domain)
            self.stage = "relaying"
        except (OSError, ConnectionError) as e:
            self.stage += " (then %r)" % e
            client.close()
            return
        self._pipe(a, b)

    def _pipe(self, a, b):
        """Both directions in this one thread: an SSL socket must not be read in one thread while
        another writes to it (OpenSSL's SSL objects are not safe for that). Decrypted bytes that
        OpenSSL holds back (pending) are drained before select waits again."""
        peer = {a: b, b: a}
        try:
            while True:
                ready = [s for s in (a, b) if s.pending()] or select.select([a, b], [], [], 30)[0]
                if not ready:
                    break
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    self.relayed += len(data)
                    peer[src].sendall(data)
        except OSError as e:
            self.stage += " (then %r)" % e
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.sock.close()
