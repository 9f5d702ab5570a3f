"""PortOne test support: settings for ``portone`` (V1) and ``portone-v2`` gateways and small PortOne servers behind ``responses``.

:class:`PortOneV1API` answers ``users/getToken`` (the same token until it is
expired on purpose), ``payments/prepare`` (POST/GET/PUT), ``payments/{imp_uid}``,
``payments/find/{merchant_uid}`` and ``payments/cancel`` (with ``checksum``)
the way ``docs/portone.rst`` (and ``/work/shared/gateways/portone.md``)
describe, with V1's ``{code, message, response}`` envelope, built from the
recorded replies in ``tests/fixtures/portone/v1/``. :class:`PortOneV2API` does
the same for V2 (``pre-register``, get, cancel with
``currentCancellableAmount``, typed errors) and signs webhooks. ``fail_next()``
injects errors and lost answers. Every request stays in ``api.requests``.

Loaded as a pytest plugin by ``tests/conftest.py``; test modules import only its constants.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from django_pgpay.gateways import standard_webhooks

FIXTURES = Path(__file__).parent / "fixtures" / "portone"
V1_BASE = "https://api.iamport.kr"
V2_BASE = "https://api.portone.io"
#: Placeholders shaped like PortOne credentials; not keys of any account.
IMP_KEY = "0000000000000000"
IMP_SECRET = "pgpayTestsOnlyNotAnImpSecret0000000000000000000000000000000000000000000"
MERCHANT_CODE = "imp00000000"
CHANNEL_KEY = "channel-key-00000000-0000-4000-8000-000000000000"
API_SECRET = "pgpayTestsOnlyNotAV2ApiSecret000000000000000000000000000000000000000000000"
STORE_ID = "store-00000000-0000-4000-8000-000000000000"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"pgpay-tests-only-webhook-secret!").decode()
V2_AUTH = f"PortOne {API_SECRET}"
JSON = {"Content-Type": "application/json"}

PORTONE = {
    "CLASS": "django_pgpay.gateways.portone.PortOneV1Gateway",
    "OPTIONS": {
        "IMP_KEY": IMP_KEY,
        "IMP_SECRET": IMP_SECRET,
        "MERCHANT_CODE": MERCHANT_CODE,
        "CHANNEL_KEY": CHANNEL_KEY,
        "TIMEOUT": (1, 2),
    },
}
PORTONE_V2 = {
    "CLASS": "django_pgpay.gateways.portone.PortOneV2Gateway",
    "OPTIONS": {
        "API_SECRET": API_SECRET,
        "STORE_ID": STORE_ID,
        "CHANNEL_KEY": CHANNEL_KEY,
        "WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "TIMEOUT": (1, 2),
    },
}

__all__ = [
    "API_SECRET",
    "CHANNEL_KEY",
    "IMP_KEY",
    "IMP_SECRET",
    "MERCHANT_CODE",
    "STORE_ID",
    "TIMEOUT",
    "V1_BASE",
    "V2_AUTH",
    "V2_BASE",
    "WEBHOOK_SECRET",
    "PortOneV1API",
    "PortOneV2API",
    "v1_fixture",
    "v2_fixture",
]


def v1_fixture(name: str) -> dict:
    """A recorded V1 reply (the whole envelope) from ``tests/fixtures/portone/v1/<name>.json``."""
    return json.loads((FIXTURES / "v1" / f"{name}.json").read_text("utf-8"))


def v2_fixture(name: str) -> dict:
    """A recorded V2 reply from ``tests/fixtures/portone/v2/<name>.json``."""
    return json.loads((FIXTURES / "v2" / f"{name}.json").read_text("utf-8"))


def _add_gateway(settings, alias: str, entry: dict):
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], alias: copy.deepcopy(entry)}}
    from django_pgpay.conf import get_gateway

    return get_gateway(alias)


@pytest.fixture
def portone(settings):
    """A ``portone`` (V1) gateway beside the fake one."""
    return _add_gateway(settings, "portone", PORTONE)


@pytest.fixture
def portone_v2(settings):
    """A ``portone-v2`` gateway beside the fake one."""
    return _add_gateway(settings, "portone-v2", PORTONE_V2)


@pytest.fixture
def portone_api(portone):
    """The mocked V1 server; any request it does not know fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield PortOneV1API(rsps)


@pytest.fixture
def portone_v2_api(portone_v2):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield PortOneV2API(rsps)


@pytest.fixture
def portone_booking(make_booking, portone):
    """A READY booking paying through PortOne V1."""

    def make(**fields):
        return make_booking(gateway="portone", **fields)

    return make


@pytest.fixture
def portone_v2_booking(make_booking, portone_v2):
    def make(**fields):
        return make_booking(gateway="portone-v2", **fields)

    return make


@dataclass
class Fault:
    status: int = 0
    body: dict | None = None
    exception: BaseException | None = None
    #: Raise ``exception`` only after PortOne acted (the answer is lost on the way back).
    after: bool = False


def _reply(status: int, body) -> tuple:
    return status, JSON, json.dumps(body, ensure_ascii=False)


class _API:
    """What both fakes share: the request log and injected faults."""

    verbs: tuple[str, ...] = ()

    def __init__(self, rsps: responses.RequestsMock):
        self.rsps = rsps
        self.payments: dict[str, dict] = {}
        self.faults: dict[str, list[Fault]] = {verb: [] for verb in self.verbs}

    @property
    def requests(self) -> list:
        return [call.request for call in self.rsps.calls]

    def sent(self, verb: str) -> list:
        return [r for r in self.requests if self.verb_of(r) == verb]

    def verb_of(self, request) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def fail_next(
        self, verb: str, *, status: int = 0, body: dict | None = None, exception: BaseException | None = None, after: bool = False
    ):
        """The next ``verb`` call gets ``status``/``body``, or raises ``exception`` (before or ``after`` acting)."""
        self.faults[verb].append(Fault(status=status, body=body, exception=exception, after=after))

    def _run(self, verb: str, act):
        queue = self.faults[verb]
        fault = queue.pop(0) if queue else None
        if fault and fault.exception is not None and not fault.after:
            raise fault.exception
        if fault and fault.status:
            return _reply(fault.status, fault.body)
        result = act()
        if fault and fault.exception is not None:
            raise fault.exception
        return result


# --- V1 -------------------------------------------------------------------------------------


class PortOneV1API(_API):
    """A stateful stand-in for PortOne's V1 REST API, registered on a ``responses`` mock."""

    verbs = ("token", "prepare", "lookup", "cancel")

    def __init__(self, rsps: responses.RequestsMock, base: str = V1_BASE):
        super().__init__(rsps)
        self.base = base
        self.tokens: list[str] = []
        self.valid_tokens: set[str] = set()
        self.token_lifetime = 1800
        #: Seconds getToken takes (to make threads meet there).
        self.token_delay = 0.0
        self.prepared: dict[str, dict] = {}
        #: What POST /payments/prepare does with a merchant_uid registered before: "error" or "overwrite".
        self.prepare_again = "error"
        self.errors = v1_fixture("errors")
        self._uids = itertools.count(448280090700)
        b = re.escape(base)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/users/getToken$"), callback=self._token)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/payments/prepare$"), callback=self._prepare)
        rsps.add_callback(responses.PUT, re.compile(rf"{b}/payments/prepare$"), callback=self._prepare_put)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/payments/prepare/[^/?]+(\?.*)?$"), callback=self._prepare_get)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/payments/cancel$"), callback=self._cancel)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/payments/find/[^/?]+(\?.*)?$"), callback=self._find)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/payments/findAll/[^/?]+(\?.*)?$"), callback=self._find_all)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/payments/[^/?]+(\?.*)?$"), callback=self._lookup)

    def verb_of(self, request) -> str:
        path = urlsplit(request.url).path
        if path.endswith("/users/getToken"):
            return "token"
        if "/payments/prepare" in path:
            return "prepare"
        if path.endswith("/payments/cancel"):
            return "cancel"
        return "lookup"

    # --- what the buyer, the bank and PortOne's staff do --------------------------

    def pay(self, order, *, amount=None, vbank: bool = False, sandbox: bool = False, status: str = "", ignore_prepare: bool = False) -> str:
        """The buyer pays ``order`` in IMP.request_pay: a new payment (``paid``, or ``ready`` with a virtual account).

        PortOne blocks a window opened with another amount than the registered
        one; ``ignore_prepare=True`` plays a payment that got through anyway
        (the seed tutorial's tampered browser on a PG without the check).
        """
        value = int(order.amount if amount is None else amount)
        prepared = self.prepared.get(order.order_number)
        if prepared is not None and prepared["amount"] != value and not ignore_prepare:
            raise AssertionError("PortOne blocks a payment window whose amount differs from the prepared one")
        imp_uid = f"imp_{next(self._uids)}"
        payment = copy.deepcopy(v1_fixture("payment_ready_vbank" if vbank else "payment_paid_card")["response"])
        payment.update(
            imp_uid=imp_uid,
            merchant_uid=order.order_number,
            name=order.get_order_name(),
            amount=value,
            sandbox=sandbox,
            started_at=1718086440 + len(self.payments),
        )
        if status:
            payment["status"] = status
        self.payments[imp_uid] = payment
        return imp_uid

    def deposit(self, imp_uid: str) -> None:
        payment = self.payments[imp_uid]
        assert payment["status"] == "ready"
        payment.update(status="paid", paid_at=1718090000)

    def cancel_in_console(self, imp_uid: str, amount=None) -> dict:
        payment = self.payments[imp_uid]
        return self._apply_cancel(payment, payment["amount"] - payment["cancel_amount"] if amount is None else int(amount), "콘솔 취소")

    def expire_token(self) -> None:
        """PortOne forgets every token it issued (as after ``expired_at``): the next call with one is a 401."""
        self.valid_tokens.clear()

    def balance(self, imp_uid: str) -> int:
        payment = self.payments[imp_uid]
        return payment["amount"] - payment["cancel_amount"]

    # --- the server ---------------------------------------------------------------------

    def _envelope(self, response) -> tuple:
        return _reply(200, {"code": 0, "message": None, "response": response})

    def _error(self, name: str) -> tuple:
        error = self.errors[name]
        return _reply(error["status"], error["body"])

    def _authorized(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else header  # PortOne takes both; the official client sends it raw
        return token in self.valid_tokens

    def _token(self, request):
        def act():
            if self.token_delay:
                time.sleep(self.token_delay)
            body = json.loads(request.body)
            if body != {"imp_key": IMP_KEY, "imp_secret": IMP_SECRET}:
                return self._error("unauthorized")
            current = next((t for t in reversed(self.tokens) if t in self.valid_tokens), None)
            if current is None:
                current = uuid.uuid4().hex + uuid.uuid4().hex[:8]
                self.tokens.append(current)
                self.valid_tokens.add(current)
            now = int(time.time())
            return self._envelope({"access_token": current, "now": now, "expired_at": now + self.token_lifetime})

        return self._run("token", act)

    def _public(self, payment: dict, request) -> dict | None:
        include = parse_qs(urlsplit(request.url).query).get("include_sandbox") == ["true"]
        if payment.get("sandbox") and not include:
            return None
        return payment

    def _prepare(self, request):
        if not self._authorized(request):
            return self._error("unauthorized")

        def act():
            body = json.loads(request.body)
            if body["merchant_uid"] in self.prepared and self.prepare_again == "error":
                return self._error("prepare_registered")
            self.prepared[body["merchant_uid"]] = {
                "merchant_uid": body["merchant_uid"],
                "amount": body["amount"],
                "currency": body.get("currency"),
            }
            return self._envelope(self.prepared[body["merchant_uid"]])

        return self._run("prepare", act)

    def _prepare_put(self, request):
        if not self._authorized(request):
            return self._error("unauthorized")
        body = json.loads(request.body)
        if body["merchant_uid"] not in self.prepared:
            return _reply(404, {"code": -1, "message": "사전등록된 결제정보가 없습니다.", "response": None})
        self.prepared[body["merchant_uid"]].update(amount=body["amount"], currency=body.get("currency"))
        return self._envelope(self.prepared[body["merchant_uid"]])

    def _prepare_get(self, request):
        if not self._authorized(request):
            return self._error("unauthorized")
        merchant_uid = urlsplit(request.url).path.rsplit("/", 1)[1]
        found = self.prepared.get(merchant_uid)
        if found is None:
            return _reply(404, {"code": -1, "message": "사전등록된 결제정보가 없습니다.", "response": None})
        return self._envelope(found)

    def _lookup(self, request):
        if not self._authorized(request):
            return self._error("unauthorized")
        imp_uid = urlsplit(request.url).path.rsplit("/", 1)[1]

        def act():
            payment = self.payments.get(imp_uid)
            payment = self._public(payment, request) if payment else None
            return self._envelope(payment) if payment else self._error("not_found")

        return self._run("lookup", act)

    def _find(self, request):
        if not self._authorized(request):
            return self._error("unauthorized")
        merchant_uid = urlsplit(request.url).path.rsplit("/", 1)[1]

        def act():
            found = [p for p in self.payments.values() if p["merchant_uid"] == merchant_uid and self._public(p, request)]
            found.sort(key=lambda p: p["started_at"], reverse=True)  # sorting=-started
            return self._envelope(found[0]) if found else self._error("not_found")

        return self._run("lookup", act)

    def _find_all(self, request):
        """``GET /payments/findAll/{merchant_uid}``: every attempt, one page (portone.md §6)."""
        if not self._authorized(request):
            return self._error("unauthorized")
        merchant_uid = urlsplit(request.url).path.rsplit("/", 1)[1]

        def act():
            found = [p for p in self.payments.values() if p["merchant_uid"] == merchant_uid and self._public(p, request)]
            found.sort(key=lambda p: p["started_at"], reverse=True)
            if not found:
                return self._error("not_found")
            page = {
                "total": len(found),
                "previous": 0,
                "next": 0,
                "list": [{k: v for k, v in p.items() if not k.startswith("_")} for p in found],
            }
            return self._envelope(page)

        return self._run("lookup", act)

    def _apply_cancel(self, payment: dict, amount: int, reason: str) -> dict:
        entry = {
            "pg_tid": payment["pg_tid"],
            "amount": amount,
            "cancelled_at": 1718090000 + len(payment["cancel_history"]) * 60,
            "reason": reason,
            "cancellation_id": f"cc_{uuid.uuid4().hex[:12]}",
            "receipt_url": f"https://iniweb.inicis.com/receipt/cancel/{uuid.uuid4().hex[:8]}",
        }
        payment["cancel_history"] = [*payment["cancel_history"], entry]
        payment["cancel_amount"] += amount
        payment["cancel_reason"] = reason
        payment["cancelled_at"] = entry["cancelled_at"]
        if payment["cancel_amount"] == payment["amount"]:
            payment["status"] = "cancelled"
        return entry

    def _cancel(self, request):
        if not self._authorized(request):
            return self._error("unauthorized")

        def act():
            body = json.loads(request.body)
            payment = self.payments.get(body.get("imp_uid"))
            if payment is None:
                return self._error("cancel_not_found")
            if payment["status"] == "cancelled":
                return self._error("already_cancelled")
            balance = payment["amount"] - payment["cancel_amount"]
            if body.get("checksum") is not None and body["checksum"] != balance:
                return self._error("checksum_mismatch")
            amount = body.get("amount") or balance
            if amount > balance:
                return self._error("exceeds_balance")
            self._apply_cancel(payment, amount, body.get("reason") or "")
            return self._envelope(payment)

        return self._run("cancel", act)


# --- V2 -------------------------------------------------------------------------------------


class PortOneV2API(_API):
    """A stateful stand-in for PortOne's V2 API, registered on a ``responses`` mock."""

    verbs = ("pre-register", "lookup", "cancel")

    def __init__(self, rsps: responses.RequestsMock, base: str = V2_BASE):
        super().__init__(rsps)
        self.base = base
        self.pre_registered: dict[str, dict] = {}
        self.errors = v2_fixture("errors")
        b = re.escape(base)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/payments/[^/]+/pre-register$"), callback=self._pre_register)
        rsps.add_callback(responses.POST, re.compile(rf"{b}/payments/[^/]+/cancel$"), callback=self._cancel)
        rsps.add_callback(responses.GET, re.compile(rf"{b}/payments/[^/?]+(\?.*)?$"), callback=self._lookup)

    def verb_of(self, request) -> str:
        path = urlsplit(request.url).path
        if path.endswith("/pre-register"):
            return "pre-register"
        if path.endswith("/cancel"):
            return "cancel"
        return "lookup"

    # --- what the buyer and PortOne's staff do -------------------------------------

    def pay(self, order, *, amount=None, virtual_account: bool = False, test_channel: bool = False, status: str = "") -> str:
        value = int(order.amount if amount is None else amount)
        payment = copy.deepcopy(v2_fixture("payment_virtual_account_issued" if virtual_account else "payment_paid"))
        payment.update(id=order.order_number, orderName=order.get_order_name(), transactionId=str(uuid.uuid4()))
        payment["amount"].update(total=value, paid=0 if virtual_account else value, cancelled=0)
        if test_channel:
            payment["channel"] = {**payment.get("channel", v2_fixture("payment_paid")["channel"]), "type": "TEST"}
        if status:
            payment["status"] = status
        self.payments[order.order_number] = payment
        return order.order_number

    def deposit(self, payment_id: str) -> None:
        payment = self.payments[payment_id]
        assert payment["status"] == "VIRTUAL_ACCOUNT_ISSUED"
        payment.update(status="PAID", paidAt="2024-06-12T01:00:00.000Z")
        payment["amount"]["paid"] = payment["amount"]["total"]

    def balance(self, payment_id: str) -> int:
        amount = self.payments[payment_id]["amount"]
        return amount["total"] - amount["cancelled"]

    def webhook(
        self,
        payment_id: str,
        kind: str = "Transaction.Paid",
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
        secret: str = WEBHOOK_SECRET,
    ) -> tuple[dict, bytes]:
        """A delivery as PortOne signs it: ``(headers, body)``."""
        body = json.dumps(
            {
                "type": kind,
                "timestamp": "2024-06-11T06:14:13.000Z",
                "data": {"paymentId": payment_id, "storeId": STORE_ID, "transactionId": str(uuid.uuid4())},
            },
            ensure_ascii=False,
        ).encode()
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": standard_webhooks.sign(secret, msg_id, stamp, body),
        }
        return headers, body

    # --- the server ---------------------------------------------------------------------

    def _error(self, kind: str) -> tuple:
        error = self.errors[kind]
        body = {"type": kind, "message": error["message"]}
        if "pgCode" in error:
            body.update(pgCode=error["pgCode"], pgMessage=error["pgMessage"])
        return _reply(error["status"], body)

    def error_reply(self, kind: str) -> dict:
        status, _, body = self._error(kind)
        return {"status": status, "body": json.loads(body)}

    def _payment_id(self, request) -> str:
        return urlsplit(request.url).path.split("/payments/", 1)[1].split("/", 1)[0]

    def _pre_register(self, request):
        if request.headers.get("Authorization") != V2_AUTH:
            return self._error("UNAUTHORIZED")

        def act():
            payment_id = self._payment_id(request)
            if self.payments.get(payment_id, {}).get("status") == "PAID":
                return self._error("ALREADY_PAID")
            self.pre_registered[payment_id] = json.loads(request.body)
            return _reply(200, {})

        return self._run("pre-register", act)

    def _lookup(self, request):
        if request.headers.get("Authorization") != V2_AUTH:
            return self._error("UNAUTHORIZED")

        def act():
            payment = self.payments.get(self._payment_id(request))
            return _reply(200, payment) if payment else self._error("PAYMENT_NOT_FOUND")

        return self._run("lookup", act)

    def _cancel(self, request):
        if request.headers.get("Authorization") != V2_AUTH:
            return self._error("UNAUTHORIZED")

        def act():
            body = json.loads(request.body)
            payment = self.payments.get(self._payment_id(request))
            if payment is None:
                return self._error("PAYMENT_NOT_FOUND")
            if payment["status"] == "CANCELLED":
                return self._error("PAYMENT_ALREADY_CANCELLED")
            if payment["status"] not in ("PAID", "PARTIAL_CANCELLED", "VIRTUAL_ACCOUNT_ISSUED"):
                return self._error("PAYMENT_NOT_PAID")
            amounts = payment["amount"]
            balance = amounts["total"] - amounts["cancelled"]
            if "currentCancellableAmount" in body and body["currentCancellableAmount"] != balance:
                return self._error("CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN")
            amount = body.get("amount", balance)
            if not 0 < amount <= balance:
                return self._error("CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT")
            cancellation = dict(v2_fixture("cancel_succeeded")["cancellation"])
            cancellation.update(id=f"cancellation-{uuid.uuid4().hex[:12]}", totalAmount=amount, reason=body["reason"])
            payment["cancellations"] = [*payment.get("cancellations", []), cancellation]
            amounts["cancelled"] += amount
            payment["status"] = "CANCELLED" if amounts["cancelled"] == amounts["total"] else "PARTIAL_CANCELLED"
            payment["cancelledAt"] = cancellation["cancelledAt"]
            return _reply(200, {"cancellation": cancellation})

        return self._run("cancel", act)


TIMEOUT = requests.exceptions.ReadTimeout("PortOne did not answer in time")
