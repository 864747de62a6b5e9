"""The harness itself: a port taken by another process between free_port() and Prosody's bind is
noticed, and Prosody moves to new ports instead of the tests talking to the other process."""
import socket

import rawxmpp
from harness import Prosody, free_port
from logins import plain


def test_free_port_never_repeats():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_prosody_moves_when_its_port_was_taken():
    server = Prosody(extra_modules=(), keep_dir=True)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", server.c2s_port))
    squatter.listen(1)
    taken = server.c2s_port
    try:
        server.start()
        assert server.c2s_port != taken
        s = rawxmpp.C2S(server.c2s_port, server.host)
        assert s.auth("PLAIN", plain("mover", server.mint("mover@%s" % server.host))).status == "success"
        server.stop()
        server.start()  # a restart keeps the new ports
        assert rawxmpp.C2S(server.c2s_port, server.host).mechanisms()
    finally:
        squatter.close()
        server.keep_dir = False
        server.stop()
