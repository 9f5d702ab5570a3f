"""A throw-away ``redis-server`` for tests that need a real broker (tests/test_rq.py, tests/test_celery.py).

No persistence, its own port, its files in the test's temporary folder; stopped on exit.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Tests that start their own ``redis-server``.
NEEDS_REDIS = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (scripts/system-deps.sh installs it)"
)


@contextlib.contextmanager
def redis_server(port: int, folder: Path) -> Iterator[str]:
    """Start ``redis-server`` on 127.0.0.1:``port``; yield its URL (database 0)."""
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)
