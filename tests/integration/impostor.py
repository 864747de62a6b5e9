"""An impostor XMPP server for the mutual-authentication test: it offers SASL-HMAC, accepts any
proof and answers success with a server proof it cannot compute (it lacks the token secret)."""
import base64
import os
import re
import socket
import threading


class Impostor:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.restarted = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_until(self, conn, pattern):
        buf = b""
        while not re.search(pattern, buf):
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        return buf

    def _serve(self):
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        try:
            if self._read_until(conn, rb"<stream:stream[^>]*>") is None:
                return
            conn.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                         b"xmlns:stream='http://etherx.jabber.org/streams' id='x' from='example.test' version='1.0'>"
                         b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                         b"<mechanism>SASL-HMAC</mechanism></mechanisms></stream:features>")
            if self._read_until(conn, rb"</auth>|<auth[^>]*/>") is None:
                return
            conn.sendall(b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</challenge>"
                         % base64.b64encode(os.urandom(24)))
            if self._read_until(conn, rb"</response>") is None:
                return
            conn.sendall(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</success>"
                         % base64.b64encode(os.urandom(32)))
            rest = self._read_until(conn, rb"<stream:stream|</stream:stream>")
            self.restarted = bool(rest and b"<stream:stream" in rest)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()
