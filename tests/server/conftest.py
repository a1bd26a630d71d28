"""conftest.py - fixtures for the server tests.

`server` serves the default model with default limits (shared by a module's tests);
`make_server(*args)` starts another one with extra options, stopped at the end of the test.
"""
import os
import subprocess

import pytest

from heylook_server import BIN, MODEL, Server


@pytest.fixture(scope="session", autouse=True)
def default_model():
    if not os.path.exists(BIN):
        pytest.skip(f"{BIN} is not built (run make)")
    r = subprocess.run([BIN, "pull", MODEL], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot pull {MODEL}: {r.stderr}")


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()
    s.check_clean()


@pytest.fixture
def make_server():
    started = []

    def start(*args, **kw):
        s = Server(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
    for s in started:
        s.check_clean()
