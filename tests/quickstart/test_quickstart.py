"""docs/quickstart.rst, executed word for word: a brand-new project pays and refunds one order.

1. The wheel (``PGPAY_QUICKSTART_WHEEL``, or one built now with uv) is what
   ``pip install django-pgpay`` installs; the page's ``python3 -m venv`` is
   uv's, which makes the same virtualenv faster. Nothing else is changed.
2. Every block the page marks (see :mod:`tests.quickstart.page`) is run or
   written in order, in a new folder, in a shell without this checkout's
   environment.
3. The ``serve`` block serves the project on a free port (``SITE_URL``
   tells the settings which, as the page says for another port).
4. Chromium does what step 9 and 10 tell a reader: log in, pick the seat,
   pay in the sandbox's Toss window, then refund the booking in the admin.
   Screenshots of each step go to ``$PGPAY_ARTIFACTS_DIR/quickstart/``, with
   the project's files (no virtualenv, no database) for a person to read.

Slow (a wheel, a virtualenv, a server): ``make test-quickstart`` runs it, and CI
(``.ci/run``). A plain ``make test`` skips it unless ``PGPAY_QUICKSTART=1`` or
``PGPAY_QUICKSTART_WHEEL`` is set.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS

from .page import PAGE, ROOT, Block, blocks

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.quickstart,
    pytest.mark.skipif(
        not (os.environ.get("PGPAY_QUICKSTART") or os.environ.get("PGPAY_QUICKSTART_WHEEL")),
        reason="slow: run it with make test-quickstart (or PGPAY_QUICKSTART=1)",
    ),
]

UV = Path(os.environ.get("UV", ROOT / ".tools" / "bin" / "uv"))
#: What the test runs instead of two of the page's commands, and why: each must occur in the page.
SUBSTITUTIONS = {
    # The wheel of this checkout, not django-pgpay from PyPI.
    "pip install django-pgpay": 'uv pip install -q "$PGPAY_WHEEL"',
    # The same virtualenv, made by uv (seconds faster; it has no pip, which the line above does not need).
    "python3 -m venv .venv": 'uv venv -q --python "$PGPAY_PYTHON" .venv',
}
#: Variables of this checkout's test run that must not reach the new project.
PRIVATE = ("DJANGO_", "PGPAY_", "PYTHONPATH", "VIRTUAL_ENV", "TOSS_", "SITE_URL", "UV_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def the_wheel(folder: Path) -> Path:
    given = os.environ.get("PGPAY_QUICKSTART_WHEEL")
    if given:
        return Path(given).resolve()
    done = subprocess.run(
        [str(UV), "build", "-q", "--wheel", "--out-dir", str(folder), str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = folder.glob("django_pgpay-*.whl")
    return wheel


class Reader:
    """Runs the page's blocks as a reader would, in one folder, keeping the shell's working directory and virtualenv."""

    def __init__(self, home: Path, wheel: Path, port: int):
        self.home = home
        self.cwd = home
        self.venv = ""
        self.port = port
        tools = home / ".tools"  # uv alone, not the rest of this checkout's .tools/bin
        tools.mkdir()
        (tools / "uv").symlink_to(UV)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE)}
        self.env.update(
            PATH=f"{tools}{os.pathsep}{os.environ['PATH']}",
            PGPAY_WHEEL=str(wheel),
            PGPAY_PYTHON=os.environ.get("PGPAY_QUICKSTART_PYTHON", sys.executable),
            SITE_URL=f"http://127.0.0.1:{port}",
            UV_LINK_MODE="copy",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
        )
        self.log = home / "reader.log"
        self.used: set[str] = set()

    def run(self, block: Block) -> str:
        text = block.text
        for original, replacement in SUBSTITUTIONS.items():
            if original in text:
                text = text.replace(original, replacement)
                self.used.add(original)
        state = self.home / ".state"
        script = "\n".join(
            [
                "set -euo pipefail",
                f'cd "{self.cwd}"',
                f'. "{self.venv}/bin/activate"' if self.venv else "",
                text,
                f'{{ pwd; echo "${{VIRTUAL_ENV:-}}"; }} > "{state}"',
            ]
        )
        done = subprocess.run(["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=600)
        with self.log.open("a") as log:
            log.write(f"$ # docs/quickstart.rst line {block.line}\n{block.text}{done.stdout}{done.stderr}\n")
        assert done.returncode == 0, f"quickstart.rst line {block.line}:\n{block.text}\n{done.stdout}\n{done.stderr}"
        cwd, venv = (state.read_text().splitlines() + ["", ""])[:2]
        self.cwd, self.venv = Path(cwd), venv
        return done.stdout

    def write(self, block: Block) -> None:
        path = self.cwd / block.target
        path.parent.mkdir(parents=True, exist_ok=True)
        if block.action == "append":
            assert path.exists(), f"quickstart.rst line {block.line}: {block.target} should exist by now"
            path.write_text(path.read_text("utf-8") + "\n\n" + block.text, "utf-8")
        else:
            path.write_text(block.text, "utf-8")

    def serve(self, block: Block) -> subprocess.Popen:
        command = block.text.strip()
        assert command == "python manage.py runserver", (
            f"quickstart.rst line {block.line}: the test serves 'python manage.py runserver', not {command!r}"
        )
        out = (self.home / "server.log").open("w")
        process = subprocess.Popen(
            [f"{self.venv}/bin/python", "manage.py", "runserver", f"127.0.0.1:{self.port}"],
            cwd=self.cwd,
            env={**self.env, "VIRTUAL_ENV": self.venv},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # runserver's reloader has a child: stop the whole group
        )
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"runserver exited:\n{(self.home / 'server.log').read_text()}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/", timeout=5).status_code == 200:
                    return process
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                stop(process)
                raise AssertionError(f"the project did not answer in 60 s:\n{(self.home / 'server.log').read_text()}")
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def superuser_password() -> str:
    """The admin's password, as the page sets it (DJANGO_SUPERUSER_PASSWORD=...)."""
    match = re.search(r"DJANGO_SUPERUSER_PASSWORD=(\S+)", PAGE.read_text("utf-8"))
    assert match, "the page no longer creates the superuser with DJANGO_SUPERUSER_PASSWORD"
    return match.group(1)


def refund_in_admin(page, base: str, booking_id: int, amount: str, reason: str) -> None:
    """The admin's refund of one booking, as step 10 says: the order page, its refund form, the confirmation.

    The one place that knows the admin's refund steps (change them here, and
    in step 10 of the page).
    """
    page.goto(f"{base}/admin/bookings/booking/{booking_id}/change/")
    page.fill("#id_amount", amount)
    page.fill("#id_reason", reason)
    page.click("#pgpay-refund-form button[type=submit]")  # "Review the refund": nothing changes yet
    expect(page.locator("#pgpay-confirm-amount")).to_be_visible()
    page.click("#pgpay-confirm-button")  # "Yes, refund ..."
    expect(page.locator("ul.messagelist li.success")).to_be_visible()


def test_the_quickstart_pays_and_refunds_one_order_in_a_new_project(browser, tmp_path_factory):
    shots = ARTIFACTS / "quickstart"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    home = tmp_path_factory.mktemp("quickstart")
    wheel = the_wheel(tmp_path_factory.mktemp("wheel"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    reader = Reader(home, wheel, port)

    server = None
    marked = blocks()
    assert [b.action for b in marked].count("serve") == 1, "the page serves the project once"
    try:
        for block in marked:
            if block.action == "run":
                reader.run(block)
            elif block.action in ("write", "append"):
                reader.write(block)
            elif block.action == "serve":
                # Before serving: the reader's project is django-pgpay from the wheel.
                where = subprocess.run(
                    [f"{reader.venv}/bin/python", "-c", "import django_pgpay, sys; print(django_pgpay.__file__.startswith(sys.prefix))"],
                    capture_output=True,
                    text=True,
                    env=reader.env,
                    cwd=reader.cwd,
                    check=True,
                )
                assert where.stdout.strip() == "True", "django_pgpay was not imported from the new virtualenv"
                server = reader.serve(block)
                pay_and_refund(browser, base, reader.cwd / "db.sqlite3", shots)
        assert reader.used == set(SUBSTITUTIONS), f"the page no longer says {set(SUBSTITUTIONS) - reader.used}: update SUBSTITUTIONS"
        assert server is not None
    finally:
        if server is not None:
            stop(server)
        keep(reader, shots)


def pay_and_refund(browser, base: str, database: Path, shots: Path) -> None:
    context = browser.new_context(locale="ko-KR", viewport={"width": 1280, "height": 900}, base_url=base)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        # Step 9: log in, pick the seat, proceed, pay in the sandbox's Toss window.
        page.goto("/accounts/login/?next=/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", superuser_password())
        page.click("form button[type=submit]")
        page.wait_for_url(base + "/")
        page.screenshot(path=shots / "1-seats.png", full_page=True)
        page.click("a[href^='/book/']")
        expect(page.locator("#pgpay-proceed")).to_be_visible()
        page.screenshot(path=shots / "2-checkout.png", full_page=True)
        page.click("#pgpay-proceed")
        order_number = page.locator("#pgpay-order-number").inner_text()
        page.wait_for_load_state("load")  # the SDK's script enables the Pay button
        page.screenshot(path=shots / "3-payment-page.png", full_page=True)
        page.click("#pgpay-toss-pay")
        page.wait_for_url("**/sandbox/toss/pay/**")
        expect(page.locator("#order-id")).to_have_text(order_number)
        page.screenshot(path=shots / "4-sandbox-toss-window.png", full_page=True)
        page.click("#pay")
        expect(page.locator("#pgpay-success")).to_be_visible()
        expect(page.locator("#pgpay-status")).to_have_text("결제 완료")
        page.screenshot(path=shots / "5-paid.png", full_page=True)

        db = Database(database)
        booking_id, status, amount = db.row("SELECT id, status, amount FROM bookings_booking WHERE order_number = ?", order_number)
        assert status == "PAID"
        assert db.value("SELECT remain FROM bookings_seat") == 3  # one of four held
        # The sandbox's webhook arrives (its thread) at pay/toss/webhook/, verified and applied.
        db.wait_for(
            "SELECT count(*) FROM django_pgpay_webhookevent WHERE order_number = ? AND verified AND processed AND error = ''", order_number
        )

        # Step 10: refund it from the admin.
        refund_in_admin(page, base, booking_id, str(int(amount)), "quickstart: refund")
        page.screenshot(path=shots / "6-admin-refund.png", full_page=True)
        assert db.row("SELECT status, canceled_amount FROM bookings_booking WHERE id = ?", booking_id) == ("CANCELED", amount)
        assert db.value("SELECT remain FROM bookings_seat") == 4  # the place is back
        assert (
            db.value(
                "SELECT count(*) FROM bookings_bookingtransaction WHERE order_id = ? AND kind = 'cancel' AND status = 'succeeded' AND reason = ?",
                booking_id,
                "quickstart: refund",
            )
            == 1
        )
    finally:
        context.close()


class Database:
    """Read-only queries on the new project's SQLite file."""

    def __init__(self, path: Path):
        self.path = path

    def row(self, sql: str, *params) -> tuple:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute(sql, params).fetchall()
        assert rows, f"no row for {sql} {params}"
        return rows[0]

    def value(self, sql: str, *params):
        return self.row(sql, *params)[0]

    def wait_for(self, sql: str, *params, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.value(sql, *params) != 1:
            assert time.monotonic() < deadline, f"{sql} {params}: not 1 after {timeout} s"
            time.sleep(0.2)


def keep(reader: Reader, shots: Path) -> None:
    """The new project's files (without the virtualenv and the database) and the logs, next to the screenshots."""
    project = reader.cwd
    if project.exists() and (project / "manage.py").exists():
        shutil.copytree(
            project,
            shots / "project",
            ignore=shutil.ignore_patterns(".venv", "db.sqlite3", "__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
    for log in ("reader.log", "server.log"):
        if (reader.home / log).exists():
            shutil.copyfile(reader.home / log, shots / log)
