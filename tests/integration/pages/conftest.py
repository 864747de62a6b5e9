"""The browser-session modules' fixtures (what they share otherwise is ../browser_pages.py): each
module its own Prosody, each test its own fake web app. Here, not in ../conftest.py, so that
`server` and `app` mean these only in this directory."""
import pytest

from browser_pages import page_app, page_server


@pytest.fixture(scope="module")
def server():
    yield from page_server()


@pytest.fixture
def app(server):
    yield from page_app(server)
