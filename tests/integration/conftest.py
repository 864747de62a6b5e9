import pytest

from harness import Prosody  # on the path by pytest.ini


@pytest.fixture(scope="session")
def prosody():
    server = Prosody().start()
    server.used_tokens = []
    yield server
    server.stop()
