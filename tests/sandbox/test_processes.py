"""Several processes share the sandbox: state, faults and the clock live in the database."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from .conftest import AVAILABLE_APPS

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)

ROOT = Path(__file__).resolve().parents[2]


def other_process(*args):
    """``manage.py pgpay_sandbox ...`` in a separate Python process, on this test database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "PGPAY_TEST_DB_NAME": connection.settings_dict["NAME"],
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "pgpay_sandbox", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_another_process_drives_what_the_server_answers(toss, paid):
    if connection.vendor == "sqlite":
        pytest.skip("the in-memory SQLite test database is private to this process; CI runs this on PostgreSQL and MariaDB")
    params = paid(method="VIRTUAL_ACCOUNT", amount=30000)
    assert toss.confirm(params["paymentKey"], params["orderId"], 30000).json()["status"] == "WAITING_FOR_DEPOSIT"
    # The bank (another process) reports the deposit; the server sees it.
    deposited = json.loads(other_process("action", "toss", "deposit", f"payment_key={params['paymentKey']}"))
    assert deposited["status"] == "DONE"
    assert toss.payment(params["paymentKey"]).json()["status"] == "DONE"
    # A fault armed elsewhere hits the server's next call.
    other_process("fault", "toss", "lookup", "error_before", "--param", "status=503")
    assert toss.payment(params["paymentKey"]).status_code == 503
    # So does the clock.
    other_process("clock", "--advance", "600")
    later = paid()
    other_process("clock", "--advance", "601")
    assert toss.confirm(later["paymentKey"], later["orderId"], 15000).json()["code"] == "NOT_FOUND_PAYMENT_SESSION"
