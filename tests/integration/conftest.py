import pytest

from harness import Prosody  # on the path by pytest.ini

# The longest modules (scripts/test.sh prints each pass's slowest tests), in the order xdist hands
# them to its workers: longest first, so that none of them starts last and runs on alone while the
# other workers have finished. A scheduling hint only: every module runs, in one worker, as before.
LONGEST_FIRST = (
    "test_packages.py", "pages/test_browser_sessions.py", "pages/test_browser_refusals.py", "test_proxy.py",
    "test_sasl2.py", "test_browser.py", "pages/test_browser_credentials.py", "test_prosodyctl.py",
    "pages/test_browser_signout.py", "test_deb.py", "test_dist.py", "test_demo.py", "test_restart.py",
    "test_binary_rocks.py",
)


def pytest_collection_modifyitems(config, items):
    """Moves the LONGEST_FIRST modules to the front; the same order in every xdist worker (a stable
    sort on the module's path alone), which xdist requires."""
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        path = path.split("tests/integration/", 1)[-1]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)


@pytest.fixture(scope="session")
def prosody():
    server = Prosody().start()
    server.used_tokens = []
    yield server
    server.stop()
