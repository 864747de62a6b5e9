import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "slixmpp"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))  # converse_auth
from harness import Prosody  # noqa: E402


@pytest.fixture(scope="session")
def prosody():
    server = Prosody().start()
    server.used_tokens = []
    yield server
    server.stop()
