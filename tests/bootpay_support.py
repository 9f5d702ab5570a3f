"""Bootpay test support: settings for a ``bootpay`` gateway and a small Bootpay server behind ``responses``.

:class:`BootpayAPI` keeps receipts by receipt id and answers the token, confirm,
cancel and receipt calls the way ``docs/bootpay.rst`` (and
``/work/shared/gateways/bootpay.md``) describe, with receipts built from the
recorded ones in ``tests/fixtures/bootpay/``. It refuses a second cancel with a
``cancel_id`` it has seen, as Bootpay does. Where Bootpay publishes no error
code (a confirm of a receipt that is not waiting, a repeated ``cancel_id``, an
already cancelled receipt) the server answers with a code of its own, set on
the instance, so tests can try mapped and unmapped codes. ``fail_next()``
injects errors and lost answers; every request stays in ``api.requests``.

Loaded as a pytest plugin by ``tests/conftest.py``; test modules import only its constants.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import responses

FIXTURES = Path(__file__).parent / "fixtures" / "bootpay"
BASE = "https://api.bootpay.co.kr/v2"
#: Placeholders shaped like Bootpay keys; not keys of any account.
CLIENT_KEY = "pgpay-tests-client-key-0000"
SECRET_KEY = "cGdwYXktdGVzdHMtb25seS1ub3QtYS1zZWNyZXQ="
APPLICATION_ID = "6667000000000000000000aa"
PRIVATE_KEY = "cGdwYXktdGVzdHMtb25seS1ub3QtYS1wcml2YXRlLWtleQ="
WEB_APPLICATION_ID = "6667000000000000000000ab"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_KEY}:{SECRET_KEY}".encode()).decode()
JSON = {"Content-Type": "application/json"}
BOOTPAY = {
    "CLASS": "django_pgpay.gateways.bootpay.BootpayGateway",
    "OPTIONS": {"CLIENT_KEY": CLIENT_KEY, "SECRET_KEY": SECRET_KEY, "TIMEOUT": (1, 2)},
}
LEGACY = {
    "CLASS": "django_pgpay.gateways.bootpay.BootpayGateway",
    "OPTIONS": {"APPLICATION_ID": APPLICATION_ID, "PRIVATE_KEY": PRIVATE_KEY, "WEB_APPLICATION_ID": WEB_APPLICATION_ID, "TIMEOUT": (1, 2)},
}
TIMEOUT = requests.exceptions.ReadTimeout("Bootpay did not answer in time")

__all__ = [
    "APPLICATION_ID",
    "BASE",
    "BASIC",
    "BOOTPAY",
    "BootpayAPI",
    "CLIENT_KEY",
    "LEGACY",
    "PRIVATE_KEY",
    "SECRET_KEY",
    "TIMEOUT",
    "WEB_APPLICATION_ID",
    "bootpay",
    "bootpay_api",
    "bootpay_booking",
    "fixture",
]


def fixture(name: str) -> dict:
    """A recorded Bootpay reply from ``tests/fixtures/bootpay/<name>.json``."""
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))


def _configure(settings, entry) -> None:
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "bootpay": copy.deepcopy(entry)}}


@pytest.fixture
def bootpay(settings):
    """A ``bootpay`` gateway (current Basic keys) beside the fake one."""
    _configure(settings, BOOTPAY)
    from django_pgpay.conf import get_gateway

    return get_gateway("bootpay")


@pytest.fixture
def bootpay_api(bootpay):
    """The mocked Bootpay server; any request it does not know fails the call."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield BootpayAPI(rsps)


@pytest.fixture
def bootpay_booking(make_booking, bootpay):
    """A READY booking paying through Bootpay (seed 004's 10,000 won unless told)."""

    def make(amount=Decimal(10000), **fields):
        return make_booking(amount=amount, gateway="bootpay", **fields)

    return make


@dataclass
class Fault:
    status: int = 0
    code: str = ""
    message: str = ""
    exception: BaseException | None = None
    #: Raise ``exception`` only after Bootpay acted (the answer is lost on the way back).
    after: bool = False
    body: str | None = None


class BootpayAPI:
    """A stateful stand-in for Bootpay's REST API v2, registered on a ``responses`` mock."""

    #: What this server answers where Bootpay publishes no code (overridable per test).
    not_confirmable = ("RC_CONFIRM_FAILED", 400, "승인 대기 상태의 결제가 아닙니다.")
    already_cancelled = ("RC_CANCEL_FAILED", 400, "기취소된 건입니다.")  # seed 004's wording
    duplicate_cancel_id = ("RC_CANCEL_FAILED", 400, "이미 처리된 cancel_id 입니다.")

    def __init__(self, rsps: responses.RequestsMock, base: str = BASE):
        self.rsps = rsps
        self.base = base
        self.receipts: dict[str, dict] = {}
        self.cancel_ids: dict[str, list[str]] = {}
        self.tokens: list[str] = []
        self.faults: dict[str, list[Fault]] = {"token": [], "confirm": [], "cancel": [], "lookup": []}
        self.errors = fixture("errors")
        b = re.escape(base)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/request/token$"), callback=self._token)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/confirm$"), callback=self._confirm)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/cancel$"), callback=self._cancel)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/receipt/([^/?]+)(\?.*)?$"), callback=self._lookup)

    # --- what the buyer, the bank and Bootpay's staff do ------------------------

    def authorize(self, order, *, virtual_account: bool = False, amount=None, status: int = 2) -> str:
        """The buyer authenticates in Bootpay's window (``separately_confirmed``): a receipt in status 2."""
        receipt_id = uuid.uuid4().hex[:24]
        receipt = fixture("receipt_vbank_issued" if virtual_account else "receipt_confirm_waiting")
        value = int(order.amount if amount is None else amount)
        receipt.update(
            receipt_id=receipt_id,
            order_id=order.order_number,
            order_name=order.get_order_name(),
            price=value,
            cancelled_price=0,
            status=status,
            status_locale={2: "승인대기", 1: "결제완료", 5: "가상계좌 발급완료"}.get(status, ""),
            purchased_at=None,
        )
        receipt["_virtual"] = virtual_account
        self.receipts[receipt_id] = receipt
        return receipt_id

    def deposit(self, receipt_id: str) -> None:
        receipt = self.receipts[receipt_id]
        assert receipt["status"] == 5
        receipt.update(status=1, status_locale="결제완료", purchased_at="2024-06-12T10:20:00+09:00")

    def cancel_at_bootpay(self, receipt_id: str, amount=None) -> None:
        """Bootpay's dashboard (or the PG's nightly cancel of test payments) gives money back."""
        receipt = self.receipts[receipt_id]
        self._apply_cancel(receipt, receipt["price"] - receipt["cancelled_price"] if amount is None else int(amount))

    def fail_next(self, verb: str, code: str = "", *, status: int = 0, message: str = "", exception=None, after=False, body=None):
        """The next ``verb`` call (token, confirm, cancel, lookup) gets an error, a raw ``body``, or raises ``exception``."""
        if code and not status:
            status = self.errors.get(code, {}).get("status", 400)
        message = message or self.errors.get(code, {}).get("message", code)
        self.faults[verb].append(Fault(status=status, code=code, message=message, exception=exception, after=after, body=body))

    def status(self, receipt_id: str) -> int:
        return self.receipts[receipt_id]["status"]

    # --- requests seen --------------------------------------------------------

    @property
    def requests(self) -> list:
        return [call.request for call in self.rsps.calls]

    def sent(self, verb: str) -> list:
        """Requests of one verb: ``token``, ``confirm``, ``cancel`` or ``lookup``."""

        def verb_of(request):
            if request.method == "GET":
                return "lookup"
            path = request.url.split("?", 1)[0]
            if path.endswith("/request/token"):
                return "token"
            return "confirm" if path.endswith("/confirm") else "cancel"

        return [r for r in self.requests if verb_of(r) == verb]

    # --- the server -------------------------------------------------------------

    def _public(self, receipt: dict) -> dict:
        return {k: v for k, v in receipt.items() if not k.startswith("_")}

    @staticmethod
    def _reply(status: int, body) -> tuple:
        return status, JSON, json.dumps(body, ensure_ascii=False)

    def _error(self, code: str, status: int, message: str, **extra):
        return self._reply(status, {"error_code": code, "message": message, **extra})

    def _authorized(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        return header == BASIC or (header.startswith("Bearer ") and header[7:] in self.tokens[-1:])

    def _run(self, verb: str, request, act):
        fault = self.faults[verb].pop(0) if self.faults[verb] else None
        if fault and fault.exception is not None and not fault.after:
            raise fault.exception
        if fault and fault.body is not None:
            return fault.status or 200, JSON, fault.body
        if fault and fault.code:
            return self._error(fault.code, fault.status, fault.message)
        if verb != "token" and not self._authorized(request):
            return self._error("TOKEN_KEY_INVALID", 401, "ACCESS TOKEN 값을 확인해주세요.")
        reply = act(json.loads(request.body) if request.body else {})
        if fault and fault.exception is not None:
            raise fault.exception
        return reply

    def _token(self, request):
        def act(body):
            if body != {"application_id": APPLICATION_ID, "private_key": PRIVATE_KEY}:
                return self._error("APP_KEY_NOT_FOUND", 401, "존재하지 않는 Application ID입니다.")
            token = f"bp_token_{len(self.tokens) + 1}_{uuid.uuid4().hex[:8]}"
            self.tokens.append(token)
            return self._reply(200, {"access_token": token, "server_time": 1718086482000, "expire_in": 1800})

        return self._run("token", request, act)

    def _confirm(self, request):
        def act(body):
            receipt = self.receipts.get(body.get("receipt_id"))
            if receipt is None:
                return self._error("RC_NOT_FOUND", 404, self.errors["RC_NOT_FOUND"]["message"])
            if receipt["status"] != 2:
                code, status, message = self.not_confirmable
                return self._error(code, status, message)
            if receipt["_virtual"]:
                receipt.update(status=5, status_locale="가상계좌 발급완료")
            else:
                receipt.update(status=1, status_locale="결제완료", purchased_at="2024-06-11T15:14:42+09:00")
            return self._reply(200, self._public(receipt))

        return self._run("confirm", request, act)

    def _apply_cancel(self, receipt: dict, amount: int) -> None:
        receipt["cancelled_price"] += amount
        receipt.update(status=20, status_locale="결제취소완료", cancelled_at="2024-06-11T16:00:00+09:00")

    def _cancel(self, request):
        def act(body):
            receipt = self.receipts.get(body.get("receipt_id"))
            if receipt is None:
                return self._error("RC_NOT_FOUND", 404, self.errors["RC_NOT_FOUND"]["message"])
            seen = self.cancel_ids.setdefault(receipt["receipt_id"], [])
            if body.get("cancel_id") and body["cancel_id"] in seen:
                code, status, message = self.duplicate_cancel_id
                return self._error(code, status, message)
            remaining = receipt["price"] - receipt["cancelled_price"]
            if remaining == 0:
                code, status, message = self.already_cancelled
                return self._error(code, status, message)
            if receipt["status"] not in (1, 5, 20):
                return self._error("RC_CANCEL_FAILED", 400, "취소할 수 없는 상태의 결제입니다.")
            amount = body.get("cancel_price")
            if amount is not None and receipt["status"] == 5 and amount != remaining:
                return self._error("RC_CANCEL_FAILED", 400, "가상계좌 입금 전에는 부분취소할 수 없습니다.")
            if amount is not None and not 0 < amount <= remaining:
                return self._error("CANCEL_PRICE_OVER", 400, self.errors["CANCEL_PRICE_OVER"]["message"])
            self._apply_cancel(receipt, remaining if amount is None else amount)
            if body.get("cancel_id"):
                seen.append(body["cancel_id"])
            return self._reply(200, self._public(receipt))

        return self._run("cancel", request, act)

    def _lookup(self, request):
        receipt_id = re.search(r"/receipt/([^/?]+)", request.path_url).group(1)

        def act(body):
            receipt = self.receipts.get(receipt_id)
            if receipt is None:
                return self._error("RC_NOT_FOUND", 404, self.errors["RC_NOT_FOUND"]["message"])
            return self._reply(200, self._public(receipt))

        return self._run("lookup", request, act)
