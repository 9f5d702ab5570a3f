"""The example project, served by a real server process, for Chromium to shop in.

Each test module gets its own ``runserver --noreload`` (threaded) on a free
port of 127.0.0.1, on a copy of one SQLite database migrated and filled with
the demo data once per session. The payment sandbox runs in that server with
its webhook thread on: the gateways (Toss, Stripe, PortOne V1/V2, Bootpay)
call the sandbox over HTTP on the same server, and the sandbox posts its
webhooks back to the shop, as the PGs would. Tests read the database directly (``server.query``) and run
management commands (``server.manage("pgpay_reconcile")``) as separate
processes on the same file.

A module sets ``SERVER_ENV = {...}`` for extra environment of its server
(e.g. ``PGPAY_READY_TIMEOUT``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest
import requests

from tests.conftest import ARTIFACTS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_project"


def pytest_collection_modifyitems(items):
    if not (EXAMPLE / "manage.py").exists():
        skip = pytest.mark.skip(reason="no example_project/ here (the sdist leaves it out)")
        for item in items:
            if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
                item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: Variables of the example project's settings: a developer's own (real test keys) never reach the e2e server.
PREFIXES = ("DJANGO_", "PGPAY_", "TOSS_", "STRIPE_", "PORTONE_", "BOOTPAY_", "SANDBOX_", "EXAMPLE_", "DATABASE_URL")


def example_env(database: Path, site_url: str = "http://127.0.0.1:8000", **extra: str) -> dict[str, str]:
    """The environment of a process of the example project on ``database``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{database}",
        EXAMPLE_SITE_URL=site_url,
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@dataclass
class ExampleServer:
    """A running example project: its URL, database and log."""

    url: str
    database: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen
    #: Buyers not used yet by a test of this server: user name -> session key.
    sessions: dict[str, str] = field(default_factory=dict)
    _names: count = field(default_factory=lambda: count(1))

    def manage(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``manage.py <args>`` in another process, on this server's database and settings."""
        return manage(self.env, *args, timeout=timeout)

    def query(self, sql: str, *params) -> list[tuple]:
        """Rows of a read-only query on the server's database."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()

    def value(self, sql: str, *params):
        rows = self.query(sql, *params)
        return rows[0][0] if rows else None

    def wait_for(self, sql: str, *params, expect=True, timeout: float = 10.0):
        """Poll a query until its first value equals ``expect`` (webhooks arrive from a thread)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.value(sql, *params)
            if value == expect:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{sql} {params}: {value!r} after {timeout} s, expected {expect!r}")
            time.sleep(0.1)

    def sandbox(self, method: str, path: str, **json) -> dict:
        """The sandbox's HTTP control API (``/sandbox/control/...``)."""
        reply = requests.request(
            method, f"{self.url}/sandbox/control/{path}", json=json or None, headers={"X-Sandbox-Control": "1"}, timeout=10
        )
        assert reply.ok, reply.text
        return reply.json()

    def remain(self, seat_id: int) -> int:
        return self.value("SELECT remain FROM restaurants_seat WHERE id = ?", seat_id)

    def order(self, table: str, order_number: str) -> dict:
        cursor_rows = self.query(f"SELECT status, amount, canceled_amount, expires_at FROM {table} WHERE order_number = ?", order_number)
        status, amount, canceled, expires_at = cursor_rows[0]
        return {"status": status, "amount": amount, "canceled_amount": canceled, "expires_at": expires_at}

    def new_username(self, prefix: str = "buyer") -> str:
        return f"{prefix}{next(self._names)}-{os.getpid()}"

    def take_buyer(self) -> tuple[str, str]:
        """A buyer no other test of this server used: ``(user name, session key)``."""
        name = next(iter(self.sessions))
        return name, self.sessions.pop(name)


#: Buyer accounts made with the template database, each logged in by a session of its own.
BUYERS = [f"buyer{n}" for n in range(1, 11)]

SETUP = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command

call_command("migrate", interactive=False, verbosity=0)
call_command("demo_data", days=3)
sessions = {}
for name in %r:
    user = get_user_model().objects.create_user(name)  # no password: logged in by session only
    session = SessionStore()
    session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0], HASH_SESSION_KEY: user.get_session_auth_hash()})
    session.create()
    sessions[name] = session.session_key
print(json.dumps(sessions))
"""


@dataclass(frozen=True)
class Template:
    """The migrated database with the demo data, and the session key of each buyer in it."""

    database: Path
    sessions: dict[str, str]


@pytest.fixture(scope="session")
def example_database(tmp_path_factory) -> Template:
    """The example project's database, migrated, with the demo data and logged-in buyers (made once)."""
    folder = tmp_path_factory.mktemp("example-template")
    database = folder / "db.sqlite3"
    done = manage(example_env(database), "shell", "-v", "0", "-c", SETUP % (BUYERS,), timeout=180)
    return Template(database, json.loads(done.stdout.strip().splitlines()[-1]))


def serve(folder: Path, template: Template, extra_env: dict[str, str]) -> ExampleServer:
    database = folder / "db.sqlite3"
    shutil.copyfile(template.database, database)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = example_env(database, url, **extra_env)
    log = folder / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            # Threaded (runserver's default); checks ran when the template was made.
            [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
            cwd=EXAMPLE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ExampleServer(url=url, database=database, env=env, log=log, process=process, sessions=dict(template.sessions))
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the example server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if requests.get(url + "/", timeout=5).status_code == 200:
                return server
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or the first page is slow on a loaded machine
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the example server did not answer in 30 s:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(request, example_database, tmp_path_factory):
    """This module's example server (``SERVER_ENV`` of the module adds environment)."""
    folder = tmp_path_factory.mktemp(f"example-{request.module.__name__.rsplit('.', 1)[-1]}")
    running = serve(folder, example_database, dict(getattr(request.module, "SERVER_ENV", {})))
    yield running
    running.process.terminate()
    try:
        running.process.wait(10)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait(10)
    shutil.copyfile(running.log, shots_folder() / f"server-{folder.name}.log")


def shots_folder() -> Path:
    folder = ARTIFACTS / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def shots() -> Path:
    """``$PGPAY_ARTIFACTS_DIR/e2e``: a screenshot of each final page goes here."""
    return shots_folder()


@pytest.fixture
def open_page(browser, server):
    """A new browser tab (own cookies) in ``locale``, on the example server, logged in as a buyer of its own.

    ``logged_in=False`` for a visitor (who may sign up with :func:`pages.sign_up`).
    """
    contexts = []

    def make(locale: str = "en-US", *, logged_in: bool = True):
        context = browser.new_context(locale=locale, viewport={"width": 1200, "height": 900}, base_url=server.url)
        context.set_default_timeout(15_000)
        if logged_in:
            _name, session_key = server.take_buyer()
            context.add_cookies([{"name": "sessionid", "value": session_key, "url": server.url}])
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
