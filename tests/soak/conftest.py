"""The world fixture: the test shop and the five emulated PGs on one live server."""

import pytest

from .world import World

#: Live-server tests flush only these apps' tables between tests (see tests/sandbox/conftest.py).
AVAILABLE_APPS = [
    "django_pgpay",
    "django_pgpay.sandbox",
    "tests.testapp",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.admin",
]


@pytest.fixture
def world(live_server, transactional_db, settings):
    """A :class:`World` on the live server; the sandbox starts empty."""
    from django_pgpay import checkout_locks

    settings.ROOT_URLCONF = "tests.urls"
    checkout_locks.write_slots()  # migration 0006 writes them; an earlier transactional test's flush emptied the table
    made = World(live_server.url, settings)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def _no_worker_left():
    yield
    from django_pgpay.sandbox.worker import stop_worker

    stop_worker()
