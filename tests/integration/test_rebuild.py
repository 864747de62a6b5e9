"""Rebuilding the library while a Prosody runs with it (make build, make check, make test all
build first): the new file is renamed into place, so the running Prosody keeps the library it
loaded. Written over in place, the loaded library changed under Prosody and it crashed
(segmentation fault) at its next call into it."""
import subprocess
import time

import pytest

from harness import NATIVE_LIB, REPO, Prosody
from logins import plain_login_status

# version_independent (pytest.ini): make's rename against the mapping a running process keeps of the
# old file; both Prosodys load the library with the same lua5.4 (dlopen)
pytestmark = pytest.mark.version_independent


def test_a_rebuild_leaves_a_running_prosody_alone():
    assert NATIVE_LIB == REPO / "build" / "lua5.4" / "prosody_auth_hmac.so", "this test rebuilds that file"
    server = Prosody().start()
    try:
        assert plain_login_status(server, "before") == "success"
        inode = NATIVE_LIB.stat().st_ino
        subprocess.run(["make", "-C", str(REPO), "--no-print-directory", "native-lua5.4"], check=True,
                       capture_output=True, timeout=600)
        assert NATIVE_LIB.stat().st_ino != inode, "the library was not replaced: nothing was tested"
        time.sleep(0.2)
        assert plain_login_status(server, "after") == "success"
        assert server.proc.poll() is None, server.tail()
    finally:
        server.stop()
