"""Impostor XMPP servers for the mutual-authentication tests. None holds the token secret; each
records everything the client sent (`received`) and whether the client restarted the stream after
<success/> (which a client does only when it believes the login succeeded).

Modes:
- "wrong-proof": offers SASL-HMAC, sends a challenge, accepts any proof, and answers <success/>
  with 32 random bytes where the server proof belongs;
- "early-empty-success": answers the <auth/> at once with an empty <success/>;
- "early-random-success": answers the <auth/> at once with <success/> carrying 24 random bytes
  (the length of a genuine challenge);
- "plain-only": offers only PLAIN (and would take whatever password it is sent)."""
import base64
import os
import re
import socket
import threading

SASL = b"urn:ietf:params:xml:ns:xmpp-sasl"


class Impostor:
    def __init__(self, mode="wrong-proof"):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.restarted = False
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_until(self, conn, pattern):
        while not re.search(pattern, self.received):
            data = conn.recv(65536)
            if not data:
                return None
            self.received += data
        return self.received

    def _success(self, conn, data):
        conn.sendall(b"<success xmlns='%s'>%s</success>" % (SASL, base64.b64encode(data)))
        mark = len(self.received)
        self._read_until(conn, rb"<stream:stream[^>]*>[\s\S]*<stream:stream|</stream:stream>")
        self.restarted = b"<stream:stream" in self.received[mark:]

    def _serve(self):
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        mechanism = b"PLAIN" if self.mode == "plain-only" else b"SASL-HMAC"
        try:
            if self._read_until(conn, rb"<stream:stream[^>]*>") is None:
                return
            conn.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                         b"xmlns:stream='http://etherx.jabber.org/streams' id='x' from='example.test' version='1.0'>"
                         b"<stream:features><mechanisms xmlns='%s'><mechanism>%s</mechanism></mechanisms>"
                         b"</stream:features>" % (SASL, mechanism))
            if self._read_until(conn, rb"</auth>|<auth[^>]*/>") is None:
                return
            if self.mode == "early-empty-success":
                return self._success(conn, b"")
            if self.mode in ("early-random-success", "plain-only"):
                return self._success(conn, os.urandom(24) if self.mode != "plain-only" else b"")
            conn.sendall(b"<challenge xmlns='%s'>%s</challenge>" % (SASL, base64.b64encode(os.urandom(24))))
            if self._read_until(conn, rb"</response>") is None:
                return
            self._success(conn, os.urandom(32))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()
