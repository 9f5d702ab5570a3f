"""Toss test support: settings for a ``toss`` gateway and a small Toss server behind ``responses``.

:class:`TossAPI` keeps payments by paymentKey and answers confirm, cancel and
both lookups the way ``docs/toss.rst`` (and ``/work/shared/gateways/toss.md``)
describe, with replies built from the recorded Payment objects in
``tests/fixtures/toss/``. It replays an Idempotency-Key's first answer, and
``fail_next()`` injects Toss's error replies and lost answers. Every request
stays in ``api.requests`` so tests can assert it exactly.

Loaded as a pytest plugin by ``tests/conftest.py``; test modules import only its constants.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import responses

FIXTURES = Path(__file__).parent / "fixtures" / "toss"
BASE = "https://api.tosspayments.com"
#: Placeholders shaped like Toss test keys; not keys of any account.
SECRET_KEY = "test_sk_pgpayTestsOnly0000NotAKey"
CLIENT_KEY = "test_ck_pgpayTestsOnly0000NotAKey"
AUTH = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
JSON = {"Content-Type": "application/json"}
TOSS = {
    "CLASS": "django_pgpay.gateways.toss.TossGateway",
    "OPTIONS": {"SECRET_KEY": SECRET_KEY, "CLIENT_KEY": CLIENT_KEY, "TIMEOUT": (1, 2)},
}

__all__ = ["AUTH", "BASE", "CLIENT_KEY", "SECRET_KEY", "TIMEOUT", "TossAPI", "fixture", "toss", "toss_api", "toss_booking"]


def fixture(name: str) -> dict:
    """A recorded Toss reply from ``tests/fixtures/toss/<name>.json``."""
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))


@pytest.fixture
def toss(settings):
    """A ``toss`` gateway (test keys) beside the fake one."""
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "toss": copy.deepcopy(TOSS)}}
    from django_pgpay.conf import get_gateway

    return get_gateway("toss")


@pytest.fixture
def toss_api(toss):
    """The mocked Toss server; any request it does not know fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TossAPI(rsps)


@pytest.fixture
def toss_booking(make_booking, toss):
    """A READY booking paying through Toss."""

    def make(**fields):
        return make_booking(gateway="toss", **fields)

    return make


@dataclass
class Fault:
    status: int = 0
    code: str = ""
    exception: BaseException | None = None
    #: Raise ``exception`` only after Toss acted (the answer is lost on the way back).
    after: bool = False


class TossAPI:
    """A stateful stand-in for Toss's core API, registered on a ``responses`` mock."""

    def __init__(self, rsps: responses.RequestsMock, base: str = BASE):
        self.rsps = rsps
        self.base = base
        self.payments: dict[str, dict] = {}
        self.replies: dict[tuple[str, str], tuple[int, dict]] = {}
        self.faults: dict[str, list[Fault]] = {"confirm": [], "cancel": [], "lookup": []}
        self.errors = fixture("errors")
        b = re.escape(base)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/v1/payments/confirm$"), callback=self._confirm)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/v1/payments/([^/]+)/cancel$"), callback=self._cancel)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/v1/payments/orders/([^/]+)$"), callback=self._lookup_order)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/v1/payments/([^/]+)$"), callback=self._lookup)

    # --- what the buyer, the bank and Toss's staff do -------------------------

    def authorize(self, order, *, virtual_account: bool = False, amount=None) -> str:
        """The buyer authenticates in the payment window: a new IN_PROGRESS payment."""
        key = f"tgen_{uuid.uuid4().hex[:20]}"
        template = fixture("payment_waiting_for_deposit" if virtual_account else "payment_done_card")
        payment = copy.deepcopy(template)
        value = int(order.amount if amount is None else amount)
        payment.update(
            paymentKey=key,
            orderId=order.order_number,
            orderName=order.get_order_name(),
            status="IN_PROGRESS",
            approvedAt=None,
            totalAmount=value,
            balanceAmount=value,
            cancels=None,
            secret=f"ps_{uuid.uuid4().hex[:24]}" if virtual_account else None,
        )
        payment["_virtual"] = virtual_account
        self.payments[key] = payment
        return key

    def deposit(self, key: str) -> None:
        payment = self.payments[key]
        assert payment["status"] == "WAITING_FOR_DEPOSIT"
        payment.update(status="DONE", approvedAt="2024-06-11T17:30:00+09:00")

    def expire(self, key: str) -> None:
        payment = self.payments[key]
        assert payment["status"] in ("READY", "IN_PROGRESS", "WAITING_FOR_DEPOSIT")
        payment.update(status="EXPIRED", failure={"code": "EXPIRED_PAYMENT", "message": "결제가 만료되었습니다."})

    def cancel_in_dashboard(self, key: str, amount=None) -> dict:
        return self._apply_cancel(self.payments[key], amount, "대시보드 취소")

    def fail_next(self, verb: str, code: str = "", *, status: int = 0, exception: BaseException | None = None, after: bool = False):
        """The next ``verb`` call gets Toss's ``code`` error, or raises ``exception`` (before or ``after`` acting)."""
        if code and not status:
            status = self.errors[code]["status"]
        self.faults[verb].append(Fault(status=status, code=code, exception=exception, after=after))

    def status(self, key: str) -> str:
        return self.payments[key]["status"]

    # --- requests seen --------------------------------------------------------

    @property
    def requests(self) -> list:
        return [call.request for call in self.rsps.calls]

    def sent(self, verb: str) -> list:
        """Requests of one verb: ``confirm``, ``cancel`` or ``lookup``."""

        def verb_of(request):
            if request.method == "GET":
                return "lookup"
            return "confirm" if request.url.endswith("/confirm") else "cancel"

        return [r for r in self.requests if verb_of(r) == verb]

    # --- the server -------------------------------------------------------------

    def _public(self, payment: dict) -> dict:
        return {k: v for k, v in payment.items() if not k.startswith("_")}

    def _error(self, code: str, status: int | None = None):
        return (
            status or self.errors[code]["status"],
            JSON,
            json.dumps({"code": code, "message": self.errors.get(code, {}).get("message", code)}, ensure_ascii=False),
        )

    def _check_auth(self, request):
        if request.headers.get("Authorization") != AUTH:
            return self._error("UNAUTHORIZED_KEY")
        return None

    def _fault(self, verb: str):
        queue = self.faults[verb]
        return queue.pop(0) if queue else None

    def _keyed(self, request, path: str, act):
        """Run ``act`` once per Idempotency-Key, as Toss does; the first answer is replayed."""
        denied = self._check_auth(request)
        if denied:
            return denied
        key = request.headers.get("Idempotency-Key", "")
        if key and (path, key) in self.replies:
            status, body = self.replies[(path, key)]
            return status, JSON, json.dumps(body, ensure_ascii=False)
        verb = "confirm" if path.endswith("/confirm") else "cancel"
        fault = self._fault(verb)
        if fault and fault.exception is not None and not fault.after:
            raise fault.exception
        if fault and fault.code:
            status, _, body = self._error(fault.code, fault.status)
            if key:
                self.replies[(path, key)] = (status, json.loads(body))
            return status, JSON, body
        status, body = act(json.loads(request.body))
        if key:
            self.replies[(path, key)] = (status, body)
        if fault and fault.exception is not None:
            raise fault.exception
        return status, JSON, json.dumps(body, ensure_ascii=False)

    def _confirm(self, request):
        def act(body):
            payment = self.payments.get(body.get("paymentKey"))
            if payment is None:
                return self.errors_reply("NOT_FOUND_PAYMENT")
            if payment["status"] != "IN_PROGRESS":
                return self.errors_reply("ALREADY_PROCESSED_PAYMENT")
            if body.get("orderId") != payment["orderId"] or body.get("amount") != payment["totalAmount"]:
                return self.errors_reply("INVALID_REQUEST")
            if payment["_virtual"]:
                payment.update(status="WAITING_FOR_DEPOSIT")
            else:
                payment.update(status="DONE", approvedAt="2024-06-11T15:14:42+09:00")
            return 200, self._public(payment)

        return self._keyed(request, request.path_url, act)

    def errors_reply(self, code: str):
        return self.errors[code]["status"], {"code": code, "message": self.errors[code]["message"]}

    def _apply_cancel(self, payment: dict, amount, reason: str) -> dict:
        balance = payment["balanceAmount"]
        amount = balance if amount is None else int(amount)
        entry = {
            "transactionKey": uuid.uuid4().hex.upper(),
            "cancelReason": reason,
            "taxExemptionAmount": 0,
            "canceledAt": "2024-06-11T16:00:00+09:00",
            "easyPayDiscountAmount": 0,
            "receiptKey": None,
            "cancelAmount": amount,
            "taxFreeAmount": 0,
            "refundableAmount": balance - amount,
            "cancelStatus": "DONE",
            "cancelRequestId": None,
        }
        payment["cancels"] = [*(payment.get("cancels") or []), entry]
        payment["balanceAmount"] = balance - amount
        payment["lastTransactionKey"] = entry["transactionKey"]
        payment["status"] = "CANCELED" if payment["balanceAmount"] == 0 else "PARTIAL_CANCELED"
        return entry

    def _cancel(self, request):
        key = re.search(r"/v1/payments/([^/]+)/cancel$", request.path_url).group(1)

        def act(body):
            payment = self.payments.get(key)
            if payment is None:
                return self.errors_reply("NOT_FOUND_PAYMENT")
            if payment["status"] == "CANCELED":
                return self.errors_reply("ALREADY_CANCELED_PAYMENT")
            if payment["status"] not in ("DONE", "PARTIAL_CANCELED", "WAITING_FOR_DEPOSIT"):
                return self.errors_reply("NOT_CANCELABLE_PAYMENT")
            amount = body.get("cancelAmount")
            if amount is not None and payment["status"] == "WAITING_FOR_DEPOSIT" and amount != payment["balanceAmount"]:
                return self.errors_reply("NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT")
            if amount is not None and not 0 < amount <= payment["balanceAmount"]:
                return 403, {"code": "NOT_CANCELABLE_AMOUNT", "message": "취소 할 수 없는 금액 입니다."}
            self._apply_cancel(payment, amount, body["cancelReason"])
            return 200, self._public(payment)

        return self._keyed(request, request.path_url, act)

    def _lookup_reply(self, payment):
        fault = self._fault("lookup")
        if fault and fault.exception is not None:
            raise fault.exception
        if fault and fault.code:
            return self._error(fault.code, fault.status)
        if payment is None:
            return self._error("NOT_FOUND_PAYMENT")
        return 200, JSON, json.dumps(self._public(payment), ensure_ascii=False)

    def _lookup(self, request):
        denied = self._check_auth(request)
        if denied:
            return denied
        key = re.search(r"/v1/payments/([^/]+)$", request.path_url).group(1)
        return self._lookup_reply(self.payments.get(key))

    def _lookup_order(self, request):
        denied = self._check_auth(request)
        if denied:
            return denied
        order_id = re.search(r"/v1/payments/orders/([^/]+)$", request.path_url).group(1)
        found = [p for p in self.payments.values() if p["orderId"] == order_id]
        return self._lookup_reply(found[-1] if found else None)


TIMEOUT = requests.exceptions.ReadTimeout("Toss did not answer in time")
