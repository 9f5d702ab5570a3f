"""Bootpay, emulated: PG REST API v2, the JavaScript SDK 5.x and its payment window.

Mounted under ``sandbox/bootpay/`` (see :mod:`django_pgpay.sandbox.urls`), so a
Bootpay client works unchanged with its base URL set to
``http://HOST/sandbox/bootpay/v2`` (the official ``bootpay-backend`` package:
its ``BASE_URL[mode]``) and its SDK URL to
``http://HOST/sandbox/bootpay/js/bootpay.js``. The contract followed is
``shared/gateways/bootpay.md`` (the official ``bootpay-backend`` client,
Bootpay's ``bootpay-mcp`` guides and developer documentation):

- ``POST /v2/request/token`` ``{application_id, private_key}`` (legacy keys:
  the same token for 25 of its 30 minutes, on the sandbox clock), and
  ``Authorization: Basic base64(client_key:secret_key)`` or ``Bearer <token>``
  on every other call;
- ``POST /v2/confirm`` (separate approval: only a receipt in status 2),
  ``GET /v2/receipt/{receipt_id}``, ``POST /v2/cancel`` (full or partial,
  ``cancel_id`` refused when repeated, ``CANCEL_PRICE_OVER``,
  ``CANCEL_ALREADY_DONE``, virtual accounts), all answering the bare Receipt
  object or ``{"error_code", "message"[, "pg_error_code"]}``;
- ``Bootpay.requestPayment({...})`` in iframe, popup and redirect modes with
  the ``confirm``, ``done``, ``issued``, ``cancel`` and ``error`` events,
  ``Bootpay.confirm()`` and ``Bootpay.destroy()``;
- webhooks with ``webhook_type``, retried until the shop answers HTTP 200 with
  ``{"success": true}``.

Where Bootpay publishes nothing (marked "unconfirmed" in the contract notes)
the sandbox picks the likeliest answer and says so in a comment (search
"unconfirmed"); ``docs/sandbox.rst`` lists the choices.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import secrets
import string
from datetime import datetime, timedelta
from typing import Any

from django.core import checks
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import path, re_path, reverse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt

from . import clock, conf, faults, lifecycle, tokens, webhooks
from .base import CONFIRM_FAULT_CHOICES, Answer, ApiContext, ApiError, Problem, SandboxPG, dumps, framed, guard, loads
from .lifecycle import Ledger, RefundFields, Refusal, Stage
from .models import SandboxPayment
from .window import Choice, PaymentWindow
from .wire import KST, is_http_url, kst, parse_krw, with_query

#: HTTP status and message of each ``error_code`` the sandbox answers with.
#: Bootpay publishes neither its full list nor the HTTP statuses (bootpay.md
#: §7, unconfirmed): RC_NOT_FOUND's message is observed, the key errors,
#: CANCEL_ALREADY_DONE and CANCEL_PRICE_OVER are named in Bootpay's
#: troubleshooting guide; the statuses and the other codes are the sandbox's.
ERRORS: dict[str, tuple[int, str]] = {
    "RC_NOT_FOUND": (404, "영수증 정보를 찾지 못했습니다."),
    "RC_CONFIRM_FAILED": (400, "승인 대기 상태의 결제가 아닙니다."),
    "RC_CANCEL_FAILED": (400, "취소할 수 없는 상태의 결제입니다."),
    "CANCEL_ALREADY_DONE": (400, "이미 취소된 결제건입니다."),
    "CANCEL_PRICE_OVER": (400, "취소 요청 금액이 취소 가능 금액보다 큽니다."),
    "TOKEN_KEY_INVALID": (401, "ACCESS TOKEN 값을 확인해주세요."),
    "APP_KEY_NOT_FOUND": (401, "존재하지 않는 Application ID입니다."),
    "APP_CLIENT_KEY_NOT_FOUND": (401, "존재하지 않는 Client Key입니다."),
    "APP_SK_NOT_MATCHED": (401, "Secret Key가 일치하지 않습니다."),
    "INVALID_PARAMETER": (400, "요청 값이 올바르지 않습니다."),
    "NOT_FOUND": (404, "요청한 API를 찾을 수 없습니다."),
    "METHOD_NOT_ALLOWED": (405, "허용되지 않은 HTTP 메서드입니다."),
    "INTERNAL_SERVER_ERROR": (500, "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요."),
}
#: The pipeline's problems (a body that is not JSON, a fault, a sandbox bug) in Bootpay's words.
PROBLEM_CODES = {
    Problem.MALFORMED_BODY: "INVALID_PARAMETER",
    Problem.INTERNAL: "INTERNAL_SERVER_ERROR",
    Problem.INTERNAL_AFTER_COMMIT: "INTERNAL_SERVER_ERROR",
}
#: The lifecycle's refusals in Bootpay's words (bootpay.md §4, §7; the codes beyond those named there are unconfirmed).
REFUSALS = {
    Refusal.ALREADY_CANCELED: "CANCEL_ALREADY_DONE",
    Refusal.NOT_CANCELABLE: "RC_CANCEL_FAILED",
    Refusal.BALANCE_MISMATCH: "RC_CANCEL_FAILED",
    Refusal.INVALID_AMOUNT: ("INVALID_PARAMETER", "cancel_price는 1원 이상의 정수여야 합니다."),
    Refusal.OVER_BALANCE: "CANCEL_PRICE_OVER",
    Refusal.PARTIAL_UNPAID_ACCOUNT: ("RC_CANCEL_FAILED", "입금 전 가상계좌는 부분취소할 수 없습니다."),
    Refusal.PARTIAL_NOT_ALLOWED: ("RC_CANCEL_FAILED", "부분취소를 지원하지 않는 결제입니다."),
    Refusal.REFUND_ACCOUNT_REQUIRED: ("RC_CANCEL_FAILED", "가상계좌 환불에는 refund(bank_account, bank_username, bank_code)가 필요합니다."),
    Refusal.REFUND_ACCOUNT_INVALID: ("RC_CANCEL_FAILED", "refund에는 bank_account(숫자), bank_username, bank_code(3자리)가 필요합니다."),
}
#: What a refused confirm says by default (``RC_CONFIRM_FAILED`` with the PG's reason, bootpay-mcp).
DECLINE = ("RC_CONFIRM_FAILED", "[카드사 거절] 한도가 초과되었습니다.", "8326")
#: What the window reports on the SDK's ``cancel`` and ``error`` events (unconfirmed wording).
WINDOW_CANCEL = ("USER_CANCEL", "사용자가 결제를 취소하였습니다.")
WINDOW_DECLINE = ("RC_REQUEST_FAILED", "카드사에서 결제를 거절했습니다.", "8326")

#: ``status`` -> ``status_locale`` (bootpay.md §3; the fixtures' wording).
STATUS_LOCALE = {
    0: "결제대기",
    1: "결제완료",
    2: "승인대기",
    5: "가상계좌 발급완료",
    20: "결제취소완료",
    -1: "결제실패",
    -2: "승인실패",
}
#: ``method`` symbols of ``requestPayment`` -> (Korean ``method``, ``method_symbol``).
METHODS: dict[str, tuple[str, str]] = {
    "card": ("카드", "card"),
    "카드": ("카드", "card"),
    "vbank": ("가상계좌", "vbank"),
    "가상계좌": ("가상계좌", "vbank"),
    "bank": ("계좌이체", "bank"),
    "계좌이체": ("계좌이체", "bank"),
    "phone": ("휴대폰", "phone"),
    "휴대폰": ("휴대폰", "phone"),
}
#: ``pg`` symbols -> the name receipts carry (unified window: the sandbox picks nicepay).
PGS = {
    "nicepay": "나이스페이먼츠",
    "kcp": "KCP",
    "inicis": "KG이니시스",
    "danal": "다날",
    "kakao": "카카오페이",
    "payco": "페이코",
    "payletter": "페이레터",
    "tosspayments": "토스페이먼츠",
}
DEFAULT_PG = "nicepay"
#: Webhook types (JS SDK 5.x, bootpay.md §6).
COMPLETED = "PAYMENT_COMPLETED"
CANCELLED = "PAYMENT_CANCELLED"
PARTIAL_CANCELLED = "PAYMENT_PARTIAL_CANCELLED"
ISSUED = "PAYMENT_VIRTUAL_ACCOUNT_ISSUED"
#: Receipt statuses from which money can be given back.
CANCELABLE = frozenset({1, 5, 20})
BANK_CODE_LENGTH = 3
#: Where a cancel carries the refund account of a deposited virtual account (bootpay.md §4).
REFUND_FIELDS = RefundFields(bank="bank_code", number="bank_account", holder="bank_username", bank_code_length=BANK_CODE_LENGTH)
WINDOW_MARK = "pgpay-sandbox-bootpay"


def _receipt_id() -> str:
    """24 hex digits, like Bootpay's receipt ids."""
    return secrets.token_hex(12)


def _digits(length: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _get(data: Any, name: str) -> Any:
    return data.get(name) if isinstance(data, dict) else None


def _when(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


def _keys(config: dict[str, Any], name: str) -> list[str]:
    keys = config.get(name) or []
    return [str(k) for k in keys] if isinstance(keys, (list, tuple)) else []


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """The Receipt as the API returns it."""
    return copy.deepcopy(state)


class BootpaySandbox(PaymentWindow, SandboxPG):
    """Bootpay's PG REST API v2, JavaScript SDK and payment window (see the module docstring).

    Settings, ``PGPAY_SANDBOX["BOOTPAY"]``: ``CLIENT_KEYS`` and ``SECRET_KEYS``
    (made-up ``test_`` keys, paired by position), the legacy
    ``APPLICATION_IDS`` and ``PRIVATE_KEYS`` (paired the same way), optionally
    ``WEB_APPLICATION_IDS`` (JavaScript application ids the browser may use
    instead of a client key), ``WEBHOOK_URL``, ``WEBHOOK_RETRIES`` (10),
    ``TOKEN_LIFETIME`` (1800 s), ``TOKEN_REUSE`` (1500 s: the same token is
    handed out again within this time), ``PARTIAL_CANCEL_STATUS`` (20, or 1),
    ``VIRTUAL_ACCOUNT_HOURS`` (72) and ``COMPANY_NAME``.
    """

    name = "bootpay"
    problem_codes = PROBLEM_CODES
    refusals = REFUSALS
    window_template = "pgpay_sandbox/bootpay/pay.html"
    window_error_template = "pgpay_sandbox/bootpay/error.html"
    window_not_found = ("RC_NOT_FOUND", ERRORS["RC_NOT_FOUND"][1])
    window_fault_choices = CONFIRM_FAULT_CHOICES
    #: Older action names (base.ACTION_NAMES gives the uniform ones).
    action_aliases = {"authenticate": "pay", "receipt": "state"}
    settings_section = "BOOTPAY"
    key_settings = ("SECRET_KEYS", "CLIENT_KEYS", "APPLICATION_IDS", "PRIVATE_KEYS", "WEB_APPLICATION_IDS")
    #: Either the current key pairs or the legacy ones.
    required_key_settings = ("SECRET_KEYS", "PRIVATE_KEYS")
    title = "Bootpay"
    #: 10 retries with growing intervals (Bootpay: "백오프", default 10 times;
    #: the intervals are unconfirmed): 1, 2, 4 ... 512 minutes.
    retry_schedule = tuple(60 * 2**index for index in range(10))

    # --- settings ----------------------------------------------------------

    def _number(self, name: str, default: float) -> float:
        try:
            return float(self.config().get(name, default))
        except (TypeError, ValueError):
            return float(default)

    def _pairs(self, public: str, secret: str) -> list[tuple[str, str]]:
        config = self.config()
        return list(zip(_keys(config, public), _keys(config, secret)))

    @property
    def company_name(self) -> str:
        return str(self.config().get("COMPANY_NAME") or "샌드박스 상점")

    @property
    def partial_cancel_status(self) -> int:
        # bootpay.md §3: 20 for full *and* partial cancels; Bootpay's newer
        # troubleshooting guide says a partial cancel leaves 결제완료 (1). Both
        # are reachable: PARTIAL_CANCEL_STATUS = 1.
        return 1 if self.config().get("PARTIAL_CANCEL_STATUS") == 1 else 20

    def webhook_schedule(self) -> list[float]:
        schedule = super().webhook_schedule()
        retries = self.config().get("WEBHOOK_RETRIES")
        if retries is None:
            return schedule
        retries = max(int(retries), 0)
        if conf.webhook_option("RETRY_SCHEDULE") is None:
            scale = float(conf.webhook_option("TIME_SCALE"))
            while len(schedule) < retries:
                schedule.append((schedule[-1] * 2) if schedule else 60.0 * scale)
        return schedule[:retries]

    def api_base(self, base: str) -> str:
        return base + "/v2"

    def sdk_url(self, base: str) -> str:
        return base + "/js/bootpay.js"

    def check_config(self, value: dict[str, Any]) -> list:
        where = 'PGPAY_SANDBOX["BOOTPAY"]'
        messages = []
        for public, secret in (("CLIENT_KEYS", "SECRET_KEYS"), ("APPLICATION_IDS", "PRIVATE_KEYS")):
            left, right = value.get(public) or [], value.get(secret) or []
            if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)) and len(left) != len(right):
                messages.append(
                    checks.Error(
                        f"{where}[{public!r}] and [{secret!r}] are pairs: both lists need the same length.",
                        id="pgpay_sandbox.E002",
                    )
                )
        if value.get("PARTIAL_CANCEL_STATUS", 20) not in (1, 20):
            messages.append(checks.Error(f'{where}["PARTIAL_CANCEL_STATUS"] must be 20 or 1.', id="pgpay_sandbox.E002"))
        retries = value.get("WEBHOOK_RETRIES", 10)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            messages.append(checks.Error(f'{where}["WEBHOOK_RETRIES"] must be a whole number >= 0.', id="pgpay_sandbox.E002"))
        return messages

    # --- protocol --------------------------------------------------------------

    def authenticate(self, ctx: ApiContext) -> str:
        match = ctx.request.resolver_match
        if match is not None and match.url_name == "bootpay-token":
            return ""  # the token request carries its keys in the body
        header = ctx.request.headers.get("Authorization", "")
        scheme, _sep, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
                raise ApiError("APP_CLIENT_KEY_NOT_FOUND") from exc
            client_key, _sep, secret_key = decoded.partition(":")
            pairs = [pair for pair in self._pairs("CLIENT_KEYS", "SECRET_KEYS") if _same(pair[0], client_key)]
            if not pairs:
                raise ApiError("APP_CLIENT_KEY_NOT_FOUND")
            if not any(_same(secret, secret_key) for _key, secret in pairs):
                raise ApiError("APP_SK_NOT_MATCHED")
            return client_key
        if scheme.lower() == "bearer" and value:
            token = tokens.find(self.name, value)
            subjects = {_digest(app_id) for app_id, _key in self._pairs("APPLICATION_IDS", "PRIVATE_KEYS")}
            if token is None or ctx.now >= token.expires_at or token.subject not in subjects:
                raise ApiError("TOKEN_KEY_INVALID")
            return "token:" + token.subject
        raise ApiError("TOKEN_KEY_INVALID")

    def error_answer(self, ctx: ApiContext, error: ApiError) -> Answer:
        code = error.code
        status, message = ERRORS.get(code, (400, code))
        return self.error(code, error.message or message, error.status or status)

    def error(self, code: str, message: str, status: int, pg_error_code: str = "") -> Answer:
        """Bootpay's error envelope."""
        body: dict[str, Any] = {"error_code": code, "message": message}
        if pg_error_code:
            body["pg_error_code"] = pg_error_code
        return Answer.json(status, body)

    def malformed_body(self) -> str:
        return '<html><head><title>502 Bad Gateway</title></head><body>{"receipt_id": "'

    def webhook_acknowledged(self, status_code: int, body: bytes) -> bool:
        """Only HTTP 200 with the JSON body ``{"success": true}`` counts (bootpay.md §6)."""
        if status_code != 200:
            return False
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(data, dict) and data.get("success") is True

    # --- the Receipt --------------------------------------------------------------

    def render(self, payment: SandboxPayment) -> dict[str, Any]:
        """The Receipt object as the API returns it."""
        return _public(payment.state)

    def describe(self, payment: SandboxPayment) -> dict[str, Any]:
        state = payment.state
        price, cancelled = state.get("price") or 0, state.get("cancelled_price") or 0
        return {"amount": price, "balance": price - cancelled, "method": state.get("method")}

    def _locked(self, receipt_id: Any) -> SandboxPayment | None:
        if not isinstance(receipt_id, str) or not receipt_id:
            return None
        return SandboxPayment.objects.select_for_update().filter(pg=self.name, key=receipt_id).first()

    def create_receipt(self, *, request: dict[str, Any], origin: str, now: datetime, session: dict[str, Any]) -> SandboxPayment:
        """A receipt in status 0, as ``requestPayment`` makes it when the window opens."""
        receipt_id = _receipt_id()
        pg = str(request.get("pg") or DEFAULT_PG)
        method = METHODS.get(str(request.get("method") or ""))
        state = {
            "receipt_id": receipt_id,
            "order_id": request["order_id"],
            "price": request["price"],
            "tax_free": request.get("tax_free") or 0,
            "cancelled_price": 0,
            "cancelled_tax_free": 0,
            "order_name": request["order_name"],
            "company_name": self.company_name,
            "gateway_url": origin,
            "metadata": request.get("metadata") if isinstance(request.get("metadata"), dict) else {},
            "sandbox": True,
            "pg": PGS.get(pg, pg),
            "method": method[0] if method else "",
            "method_symbol": method[1] if method else "",
            "method_origin": method[0] if method else "",
            "method_origin_symbol": method[1] if method else "",
            "purchased_at": None,
            "cancelled_at": None,
            "requested_at": kst(now),
            "status_locale": STATUS_LOCALE[0],
            "receipt_url": origin + reverse("pgpay_sandbox:bootpay-receipt", args=[receipt_id]),
            "status": 0,
            "currency": "KRW",
        }
        user = request.get("user") if isinstance(request.get("user"), dict) else {}
        session = {
            "items": request.get("items") if isinstance(request.get("items"), list) else [],
            "user": {k: str(v)[:100] for k, v in user.items() if isinstance(v, (str, int))},
            **session,
            "origin": origin,
            "requestedMethod": method[1] if method else "",
            "cancelIds": [],
            "cancels": [],
            "windowToken": secrets.token_urlsafe(24),
        }
        return SandboxPayment.objects.create(
            pg=self.name, key=receipt_id, order_id=request["order_id"], status="0", state=state, session=session
        )

    def _save(self, payment: SandboxPayment, status: int | None = None, locale: str | None = None) -> None:
        if status is not None:
            payment.state["status"] = status
            payment.state["status_locale"] = locale or STATUS_LOCALE.get(status, "")
        payment.status = str(payment.state["status"])
        payment.due_at = lifecycle.deposit_at(payment.session) if payment.state["status"] == 5 else None
        payment.save(update_fields=["state", "session", "status", "due_at", "updated_at"])

    def _emit(self, payment: SandboxPayment, now: datetime, webhook_type: str) -> None:
        """Queue the webhook of a change (inside the change's transaction): the Receipt plus ``webhook_type``."""
        url = self.webhook_url(payment.session.get("origin", ""))
        if not url:
            return
        body = {**self.render(payment), "webhook_type": webhook_type}
        webhooks.enqueue(self.name, webhook_type, dumps(body), url=url, payment_key=payment.key, now=now)

    def _is_virtual_account(self, payment: SandboxPayment) -> bool:
        return payment.state.get("method_symbol") == "vbank"

    def ledger(self, payment: SandboxPayment) -> Ledger:
        """The receipt's money in the lifecycle's terms (status 20 with money left: partly cancelled)."""
        state = payment.state
        price, cancelled = state["price"], state["cancelled_price"]
        status = state["status"]
        if status in CANCELABLE and status != 5:
            stage = Stage.PAID if price - cancelled > 0 else Stage.CANCELED
        else:
            stage = Stage.AWAITING_DEPOSIT if status == 5 else Stage.CLOSED
        return Ledger(amount=price, canceled=cancelled, stage=stage, virtual_account=self._is_virtual_account(payment))

    # --- state changes (each runs inside the caller's transaction) ----------------

    def refresh(self, payment: SandboxPayment, now: datetime) -> bool:
        """A scheduled deposit that has come (status 5 -> 1); True when something changed."""
        if payment.state["status"] == 5 and lifecycle.deposit_has_come(payment.session, now):
            self._deposit(payment, now)
            return True
        return False

    def _authenticate(self, payment: SandboxPayment, method: str, now: datetime, *, deposit_after: float | None = None) -> str:
        """The buyer finished the window: returns the SDK event (confirm, done or issued)."""
        name, symbol = METHODS[method]
        payment.state.update(method=name, method_symbol=symbol, method_origin=name, method_origin_symbol=symbol)
        payment.session.update(authenticated=True, authenticatedAt=now.isoformat())
        lifecycle.defer_deposit(payment.session, deposit_after)
        if payment.session.get("separatelyConfirmed"):
            self._save(payment, 2)
            return "confirm"
        self._approve(payment, now)
        return "issued" if symbol == "vbank" else "done"

    def _approve(self, payment: SandboxPayment, now: datetime) -> None:
        """Approval: a paid receipt (1), or a virtual account issued (5)."""
        state = payment.state
        symbol = state.get("method_symbol") or "card"
        tid = f"sbx{now.astimezone(KST):%Y%m%d%H%M%S}{_digits(8)}"
        if symbol == "vbank":
            hours = self._number("VIRTUAL_ACCOUNT_HOURS", 72)
            due = now + timedelta(hours=hours)
            user = payment.session.get("user") or {}
            state["vbank_data"] = {
                "tid": tid,
                "bank_code": "088",
                "bank_name": "신한은행",
                "bank_account": _digits(14),
                "bank_username": self.company_name,
                "sender_name": str(user.get("username") or "구매자")[:50],
                "expired_at": kst(due),
                "cash_receipt_no": "",
            }
            payment.session["dueDate"] = due.isoformat()
            lifecycle.start_deposit_clock(payment.session, now)
            self._save(payment, 5)
            self._emit(payment, now, ISSUED)
            return
        state["purchased_at"] = kst(now)
        if symbol == "card":
            state["card_data"] = {
                "tid": tid,
                "card_approve_no": _digits(8),
                "card_no": f"5365{_digits(4)}****{_digits(4)}",
                "card_interest": "0",
                "card_quota": "00",
                "card_company_code": "04",
                "card_company": "삼성",
                "card_type": "신용",
                "point": 0,
                "coupon": 0,
                "receipt_url": state["receipt_url"],
            }
        elif symbol == "bank":
            state["bank_data"] = {"tid": tid, "bank_code": "004", "bank_name": "KB국민은행", "cash_receipt_no": ""}
        elif symbol == "phone":
            state["phone_data"] = {"tid": tid, "auth_no": _digits(6), "phone": f"010****{_digits(4)}", "carrier": "SKT"}
        self._save(payment, 1)
        self._emit(payment, now, COMPLETED)

    def _deposit(self, payment: SandboxPayment, now: datetime) -> None:
        """The buyer's transfer reaches the virtual account: 5 -> 1 (a second webhook, PAYMENT_COMPLETED)."""
        payment.state["purchased_at"] = kst(now)
        lifecycle.clear_deposit(payment.session)
        self._save(payment, 1)
        self._emit(payment, now, COMPLETED)

    def _cancel(
        self,
        payment: SandboxPayment,
        now: datetime,
        *,
        amount: int | None,
        cancel_id: str = "",
        username: str = "",
        message: str = "",
        tax_free: int = 0,
        refund: Any = None,
        by_admin: bool = False,
    ) -> None:
        """Give back ``amount`` (None: what is left); raises ApiError when Bootpay refuses."""
        state = payment.state
        status = state["status"]
        # A repeat of a cancel_id is refused, whatever the receipt's state, and cancels nothing
        # again: "cancel_id | 가맹점 취소 고유 ID (중복 방지)" (developers.bootpay.ai/server/cancel),
        # "cancel_id를 지정하면 동일 ID로 중복 요청 시 거부됨" (bootpay-mcp, bootpay.md §4). So a
        # retry after a lost answer gets this refusal, never a replay of the first answer: the
        # shop learns the outcome by reading the receipt (its cancelled_price). The code is unconfirmed.
        if cancel_id and cancel_id in payment.session.get("cancelIds", []):
            raise ApiError("RC_CANCEL_FAILED", "이미 처리된 cancel_id 입니다.")
        price, cancelled = state["price"], state["cancelled_price"]
        plan = self.plan_cancel(self.ledger(payment), amount, refund_account=refund, refund_fields=REFUND_FIELDS, by_pg=by_admin)
        amount = plan.amount
        if tax_free > amount or tax_free > (state.get("tax_free") or 0) - (state.get("cancelled_tax_free") or 0):
            raise ApiError("INVALID_PARAMETER", "cancel_tax_free가 취소 가능한 면세 금액보다 큽니다.")
        state["cancelled_price"] = cancelled + amount
        state["cancelled_tax_free"] = (state.get("cancelled_tax_free") or 0) + tax_free
        state["cancelled_at"] = kst(now)
        full = state["cancelled_price"] >= price
        payment.session.setdefault("cancelIds", [])
        if cancel_id:
            payment.session["cancelIds"].append(cancel_id)
        payment.session.setdefault("cancels", []).append(
            {
                "cancel_id": cancel_id,
                "price": amount,
                "username": username,
                "message": message,
                "at": kst(now),
                "by": "admin" if by_admin else "api",
            }
        )
        if full or status == 5:
            self._save(payment, 20)
        else:
            partial = self.partial_cancel_status
            self._save(payment, partial, STATUS_LOCALE[20] if partial == 20 else STATUS_LOCALE[1])
        self._emit(payment, now, CANCELLED if full else PARTIAL_CANCELLED)

    # --- the API -----------------------------------------------------------------

    def api_token(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        data = ctx.data
        application_id, private_key = _get(data, "application_id"), _get(data, "private_key")
        if not isinstance(application_id, str) or not isinstance(private_key, str) or not application_id or not private_key:
            raise ApiError("APP_KEY_NOT_FOUND")
        pairs = [pair for pair in self._pairs("APPLICATION_IDS", "PRIVATE_KEYS") if _same(pair[0], application_id)]
        # unconfirmed: Bootpay's answer to a wrong private key; the same as an unknown id here.
        if not any(_same(key, private_key) for _app, key in pairs):
            raise ApiError("APP_KEY_NOT_FOUND")
        subject = _digest(application_id)
        reuse = timedelta(seconds=self._number("TOKEN_REUSE", 1500))
        row = tokens.latest(self.name, subject, ctx.now, issued_after=ctx.now - reuse)
        if row is None:
            row = tokens.issue(self.name, subject, ctx.now, timedelta(seconds=self._number("TOKEN_LIFETIME", 1800)))
        return Answer.json(
            200,
            {
                "access_token": tokens.reveal(row),
                "server_time": int(ctx.now.timestamp() * 1000),
                "expire_in": max(int((row.expires_at - ctx.now).total_seconds()), 0),
            },
        )

    def api_confirm(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        receipt_id = _get(ctx.data, "receipt_id")
        if not isinstance(receipt_id, str) or not receipt_id:
            raise ApiError("INVALID_PARAMETER", "receipt_id가 필요합니다.")
        payment = self._locked(receipt_id)
        if payment is None:
            raise ApiError("RC_NOT_FOUND")
        self.refresh(payment, ctx.now)
        if payment.state["status"] != 2:
            # bootpay.md §3: approval is possible only while the receipt waits (status 2);
            # the code of the refusal is unconfirmed.
            return self.error_answer(ctx, ApiError("RC_CONFIRM_FAILED"))
        if fault is not None and fault.kind == "decline":
            code, message, pg_code = DECLINE
            status = int(fault.param("receipt_status", -2))
            if status != 2:
                self._save(payment, status)
            return self.error(
                str(fault.param("code", code)),
                str(fault.param("message", message)),
                int(fault.param("status", 400)),
                str(fault.param("pg_error_code", pg_code)),
            )
        self._approve(payment, ctx.now)
        return Answer.json(200, self.render(payment))

    def api_cancel(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        data = ctx.data
        if not isinstance(data, dict):
            raise ApiError("INVALID_PARAMETER")
        receipt_id = data.get("receipt_id")
        if not isinstance(receipt_id, str) or not receipt_id:
            raise ApiError("INVALID_PARAMETER", "receipt_id가 필요합니다.")
        amount = None
        if data.get("cancel_price") is not None:
            amount = parse_krw(data["cancel_price"])
            if amount is None or amount < 1:
                raise ApiError("INVALID_PARAMETER", "cancel_price는 1원 이상의 정수여야 합니다.")
        tax_free = 0
        if data.get("cancel_tax_free") is not None:
            tax_free = parse_krw(data["cancel_tax_free"])
            if tax_free is None or tax_free < 0:
                raise ApiError("INVALID_PARAMETER", "cancel_tax_free는 0 이상의 정수여야 합니다.")
        cancel_id = data.get("cancel_id") or ""  # the official client sends "" when none is given
        if not isinstance(cancel_id, str) or len(cancel_id) > 200:
            raise ApiError("INVALID_PARAMETER", "cancel_id는 200자 이하의 문자열이어야 합니다.")
        payment = self._locked(receipt_id)
        if payment is None:
            raise ApiError("RC_NOT_FOUND")
        self.refresh(payment, ctx.now)
        self._cancel(
            payment,
            ctx.now,
            amount=amount,
            cancel_id=cancel_id,
            username=str(data.get("cancel_username") or "")[:100],
            message=str(data.get("cancel_message") or "")[:200],
            tax_free=tax_free,
            refund=data.get("refund"),
        )
        return Answer.json(200, self.render(payment))

    def api_receipt(self, ctx: ApiContext, fault: faults.Fault | None = None, receipt_id: str = "") -> Answer:
        payment = self._locked(receipt_id)
        if payment is None:
            raise ApiError("RC_NOT_FOUND")
        self.refresh(payment, ctx.now)
        receipt = self.render(payment)
        if ctx.request.GET.get("lookup_user_data") == "true":
            receipt["user"] = payment.session.get("user") or {}
        return Answer.json(200, receipt)

    def _match(self, receipt_id: Any) -> list[str]:
        keys = [receipt_id] if isinstance(receipt_id, str) and receipt_id else []
        if keys:
            found = SandboxPayment.objects.filter(pg=self.name, key=receipt_id).values_list("order_id", flat=True).first()
            if found:
                keys.append(found)
        return keys

    # --- API views ---------------------------------------------------------------

    def view_token(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "token", self.api_token)

    def view_confirm(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "confirm", self.api_confirm, match=lambda ctx: self._match(_get(ctx.data, "receipt_id")))

    def view_cancel(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "cancel", self.api_cancel, match=lambda ctx: self._match(_get(ctx.data, "receipt_id")))

    def view_receipt_api(self, request: HttpRequest, receipt_id: str) -> HttpResponse:
        if request.method != "GET":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "lookup", self.api_receipt, match=lambda ctx: self._match(receipt_id), receipt_id=receipt_id)

    def view_unknown(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        return self._refuse(request, "NOT_FOUND")

    def _refuse(self, request: HttpRequest, code: str) -> HttpResponse:
        guard()
        ctx = ApiContext(request=request, now=clock.now())
        return self.error_answer(ctx, ApiError(code)).response()

    # --- the browser: SDK stand-in, payment window, receipt page ------------------

    def view_sdk(self, request: HttpRequest) -> HttpResponse:
        """The stand-in for ``https://js.bootpay.co.kr/bootpay-5.x.x.min.js``."""
        guard()
        origin = f"{request.scheme}://{request.get_host()}"
        script = render_to_string(
            "pgpay_sandbox/bootpay/sdk.js",
            {"checkout_url": origin + reverse("pgpay_sandbox:bootpay-checkout"), "sandbox_origin": origin, "mark": WINDOW_MARK},
        )
        response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
        response["Cache-Control"] = "no-store"
        response["Access-Control-Allow-Origin"] = "*"
        return response

    def view_checkout(self, request: HttpRequest) -> HttpResponse:
        """Where the SDK's ``requestPayment`` sends its parameters: a receipt in status 0 and the window's URL."""
        guard()
        if request.method == "OPTIONS":
            return _cors(HttpResponse(status=204))
        if request.method != "POST":
            return _sdk_error("INVALID_PARAMETER", "POST only.", status=405)
        try:
            payload = loads(request.body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        params = _get(payload, "request")
        if not isinstance(params, dict):
            return _sdk_error("INVALID_PARAMETER", "requestPayment의 인자가 올바르지 않습니다.")
        client_key, application_id = params.get("client_key"), params.get("application_id")
        config = self.config()
        if isinstance(client_key, str) and client_key:
            if not any(_same(client_key, key) for key in _keys(config, "CLIENT_KEYS")):
                return _sdk_error("APP_CLIENT_KEY_NOT_FOUND", ERRORS["APP_CLIENT_KEY_NOT_FOUND"][1], status=401)
        elif isinstance(application_id, str) and application_id:
            if not any(_same(application_id, key) for key in _keys(config, "WEB_APPLICATION_IDS")):
                return _sdk_error("APP_KEY_NOT_FOUND", ERRORS["APP_KEY_NOT_FOUND"][1], status=401)
        else:
            return _sdk_error("APP_CLIENT_KEY_NOT_FOUND", "client_key(또는 application_id)가 필요합니다.", status=401)
        problem = _check_request(params)
        if problem:
            return _sdk_error(*problem)
        extra = params.get("extra") if isinstance(params.get("extra"), dict) else {}
        open_type = str(payload.get("open_type") or extra.get("open_type") or "iframe")
        if open_type not in ("iframe", "popup", "redirect"):
            open_type = "iframe"
        if open_type == "redirect" and not is_http_url(extra.get("redirect_url")):
            return _sdk_error("RC_REDIRECT_URL_INVALID", "redirect 방식에는 extra.redirect_url이 필요합니다.")
        shop_origin = payload.get("origin")
        origin = f"{request.scheme}://{request.get_host()}"
        now = clock.now()
        session = {
            "openedAt": now.isoformat(),
            "clientKey": client_key or "",
            "openType": open_type,
            "redirectUrl": extra.get("redirect_url") or "",
            "separatelyConfirmed": extra.get("separately_confirmed") is True,
            "shopOrigin": shop_origin if isinstance(shop_origin, str) and is_http_url(shop_origin) else "",
        }
        with transaction.atomic():
            payment = self.create_receipt(request=params, origin=origin, now=now, session=session)
        url = origin + reverse("pgpay_sandbox:bootpay-pay", args=[payment.key]) + "?t=" + payment.session["windowToken"]
        return _cors(
            HttpResponse(
                dumps(
                    {
                        "receipt_id": payment.key,
                        "url": url,
                        "token": payment.session["windowToken"],
                        "confirm_url": origin + reverse("pgpay_sandbox:bootpay-window-confirm", args=[payment.key]),
                    }
                ),
                content_type="application/json",
            )
        )

    # --- the payment window (django_pgpay.sandbox.window) ---------------------------

    def window_payment(self, request: HttpRequest, key: str, *, lock: bool) -> SandboxPayment | None:
        """The receipt, only with the window's token (``t``): else it is unknown."""
        token = request.POST.get("t") if request.method == "POST" else request.GET.get("t")
        payment = super().window_payment(request, key, lock=lock)
        if payment is None or not isinstance(token, str) or not _same(token, payment.session.get("windowToken", "")):
            return None
        return payment

    def window_is_open(self, payment: SandboxPayment) -> bool:
        return payment.state["status"] == 0 and not payment.session.get("closed")

    def window_context(self, payment: SandboxPayment) -> dict[str, Any]:
        requested = payment.session.get("requestedMethod") or ""
        return {
            "amount_display": f"{payment.state['price']:,}",
            "requested_method": requested,
            "method_label": METHODS.get(requested, ("", ""))[0],
            "offers_virtual_account": requested in ("", "card", "vbank"),
            "offers_payment": requested != "vbank",
            "window_token": payment.session.get("windowToken", ""),
        }

    def window_act(self, request: HttpRequest, payment: SandboxPayment, choice: Choice, now: datetime) -> HttpResponse | None:
        if choice.gives_up:
            payment.session["closed"] = True
            if choice.action == "close":
                self._save(payment)
                code, message = WINDOW_CANCEL
                return self._result(request, payment, {"event": "cancel", "error_code": code, "message": message})
            code, message, pg_code = WINDOW_DECLINE
            self._save(payment, -1)
            return self._result(request, payment, {"event": "error", "error_code": code, "pg_error_code": pg_code, "message": message})
        if choice.action not in ("pay", "virtual_account"):
            return None
        requested = payment.session.get("requestedMethod") or ""
        method = "vbank" if choice.action == "virtual_account" else (requested if requested in ("card", "bank", "phone") else "card")
        event = self._authenticate(payment, method, now, deposit_after=choice.deposit_after if method == "vbank" else None)
        self.arm_window_fault(payment, choice)
        return self._result(request, payment, {"event": event})

    def _result(self, request: HttpRequest, payment: SandboxPayment, result: dict[str, Any]) -> HttpResponse:
        """The SDK's answer: a redirect to ``redirect_url``, or a page that hands it to the shop's page."""
        state = payment.state
        result = {
            **result,
            "receipt_id": payment.key,
            "order_id": payment.order_id,
            "price": state["price"],
            "data": self.render(payment),
        }
        if payment.session.get("openType") == "redirect":
            # bootpay-mcp: the redirect carries event, receipt_id, order_id, status, status_locale, message.
            query = {"event": result["event"], "receipt_id": payment.key, "order_id": payment.order_id}
            query.update(status=state["status"], status_locale=state["status_locale"])
            if result.get("message"):
                query["message"] = result["message"]
            return HttpResponseRedirect(with_query(payment.session["redirectUrl"], query))
        context = {
            "payment": payment,
            "state": state,
            "event": result["event"],
            "message": result.get("message", ""),
            "envelope": {"source": WINDOW_MARK, "receipt_id": payment.key, "result": result},
            "target_origin": payment.session.get("shopOrigin") or "*",
        }
        return render(request, "pgpay_sandbox/bootpay/result.html", context)

    def view_window_confirm(self, request: HttpRequest, receipt_id: str) -> HttpResponse:
        """``Bootpay.confirm()``: approval from the browser, for shops that do not approve on the server."""
        guard()
        if request.method == "OPTIONS":
            return _cors(HttpResponse(status=204))
        if request.method != "POST":
            return _sdk_error("INVALID_PARAMETER", "POST only.", status=405)
        try:
            token = _get(loads(request.body), "t")
        except (ValueError, UnicodeDecodeError):
            token = None
        now = clock.now()
        with transaction.atomic():
            payment = SandboxPayment.objects.select_for_update().filter(pg=self.name, key=receipt_id).first()
            if payment is None or not isinstance(token, str) or not _same(token, payment.session.get("windowToken", "")):
                return _sdk_error("RC_NOT_FOUND", ERRORS["RC_NOT_FOUND"][1], status=404)
            if payment.state["status"] != 2:
                return _sdk_error("RC_CONFIRM_FAILED", ERRORS["RC_CONFIRM_FAILED"][1])
            self._approve(payment, now)
        event = "issued" if payment.state["status"] == 5 else "done"
        result = {
            "event": event,
            "receipt_id": payment.key,
            "order_id": payment.order_id,
            "price": payment.state["price"],
            "data": self.render(payment),
        }
        return _cors(HttpResponse(dumps(result), content_type="application/json"))

    def view_receipt_page(self, request: HttpRequest, receipt_id: str) -> HttpResponse:
        """What ``receipt_url`` shows."""
        guard()
        payment = SandboxPayment.objects.filter(pg=self.name, key=receipt_id).first()
        if payment is None:
            return self.window_error(request, "RC_NOT_FOUND", ERRORS["RC_NOT_FOUND"][1], status=404)
        state = payment.state
        context = {
            "payment": payment,
            "state": state,
            "remaining": state["price"] - state["cancelled_price"],
            "cancels": payment.session.get("cancels", []),
        }
        return render(request, "pgpay_sandbox/bootpay/receipt.html", context)

    def urlpatterns(self) -> list:
        api = csrf_exempt
        return [
            path("v2/request/token", api(self.view_token), name="bootpay-token"),
            path("v2/confirm", api(self.view_confirm), name="bootpay-confirm"),
            path("v2/cancel", api(self.view_cancel), name="bootpay-cancel"),
            path("v2/receipt/<str:receipt_id>", api(self.view_receipt_api), name="bootpay-receipt-api"),
            re_path(r"^v2/(?P<rest>.*)$", api(self.view_unknown), name="bootpay-unknown"),
            path("js/bootpay.js", self.view_sdk, name="bootpay-sdk"),
            re_path(r"^js/bootpay-[0-9.]+(?:\.min)?\.js$", self.view_sdk, name="bootpay-sdk-versioned"),
            path("checkout", framed(self.view_checkout), name="bootpay-checkout"),
            # The window's POSTs carry its own token instead of Django's CSRF cookie:
            # the window runs in an iframe of the shop's page, where that cookie is third-party.
            path("pay/<str:key>", framed(self.view_pay), name="bootpay-pay"),
            path("pay/<str:receipt_id>/confirm", framed(self.view_window_confirm), name="bootpay-window-confirm"),
            path("receipt/<str:receipt_id>", self.view_receipt_page, name="bootpay-receipt"),
        ]

    # --- what people and banks do (tests, control API, dashboard) -----------------

    def dashboard_actions(self, payment: SandboxPayment) -> list[tuple[str, str]]:
        state = payment.state
        buttons = []
        if state.get("status") == 5:
            buttons.append(("deposit", _("Deposit")))
        if state.get("status") in CANCELABLE and state.get("cancelled_price", 0) < state.get("price", 0):
            buttons.append(("cancel", _("Cancel at the PG")))
        return buttons

    def actions(self) -> dict[str, Any]:
        return {
            "pay": self.act_authenticate,
            "deposit": self.act_deposit,
            "cancel": self.act_cancel,
            "expire-tokens": self.act_expire_tokens,
            "state": self.act_receipt,
        }

    def act_authenticate(
        self,
        order_id: str,
        price: int,
        order_name: str = "Sandbox order",
        method: str = "card",
        separately_confirmed: bool = True,
        deposit_after: float | None = None,
        origin: str = "",
        **request: Any,
    ) -> dict[str, Any]:
        """A buyer pays in the window, without a browser: the result of the SDK's event."""
        price = parse_krw(price)
        if price is None or price < 1:
            raise ApiError("INVALID_PARAMETER", "price must be a positive whole number of won")
        if method not in METHODS:
            raise ApiError("INVALID_PARAMETER", f"method must be one of {sorted(METHODS)}")
        params = {**request, "order_id": order_id, "price": price, "order_name": order_name}
        problem = _check_request(params)
        if problem:
            raise ApiError("INVALID_PARAMETER", problem[1])
        now = clock.now()
        origin = (origin or conf.site_url()).rstrip("/")
        with transaction.atomic():
            payment = self.create_receipt(
                request=params,
                origin=origin,
                now=now,
                session={"openedAt": now.isoformat(), "openType": "iframe", "separatelyConfirmed": bool(separately_confirmed)},
            )
            event = self._authenticate(payment, method, now, deposit_after=deposit_after)
        return {"event": event, "receipt_id": payment.key, "order_id": payment.order_id, "price": price}

    def _act(self, receipt_id: str, change) -> dict[str, Any]:
        now = clock.now()
        with transaction.atomic():
            payment = self._locked(receipt_id)
            if payment is None:
                raise ApiError("RC_NOT_FOUND")
            self.refresh(payment, now)
            change(payment, now)
        return self.render(payment)

    def act_deposit(self, payment_key: str) -> dict[str, Any]:
        """The money for a virtual account arrives (status 5 -> 1, PAYMENT_COMPLETED)."""

        def change(payment, now):
            if payment.state["status"] != 5:
                raise ApiError("RC_CANCEL_FAILED", f"status is {payment.state['status']}, not 5 (virtual account issued)")
            due = _when(payment.session.get("dueDate"))
            if due is not None and now > due:
                raise ApiError("RC_CANCEL_FAILED", "the virtual account's deadline has passed")
            self._deposit(payment, now)

        return self._act(payment_key, change)

    def act_cancel(self, payment_key: str, amount: int | None = None, message: str = "부트페이 관리자 취소") -> dict[str, Any]:
        """A cancel made in Bootpay's admin (full, or ``amount``), not asked for by the shop."""
        value = parse_krw(amount) if amount not in (None, "") else None
        if amount not in (None, "") and (value is None or value < 1):
            raise ApiError("INVALID_PARAMETER", "amount must be a positive whole number of won")

        def change(payment, now):
            self._cancel(payment, now, amount=value, username="부트페이 관리자", message=message, by_admin=True)

        return self._act(payment_key, change)

    def act_expire_tokens(self) -> dict[str, int]:
        """Every access token handed out so far expires now (on the sandbox clock)."""
        now = clock.now()
        count = tokens.expire_all(self.name, now)
        return {"expired": count}

    def act_receipt(self, payment_key: str) -> dict[str, Any]:
        """The Receipt, as ``GET /v2/receipt/{receipt_id}`` would return it."""
        return self._act(payment_key, lambda payment, now: None)

    def apply_due_to(self, key: str, now: datetime) -> bool:
        payment = self._locked(key)
        return payment is not None and self.refresh(payment, now)


def _check_request(params: dict[str, Any]) -> tuple[str, str] | None:
    """What Bootpay's SDK refuses before a window opens: (error_code, message), or None."""
    price = params.get("price")
    if isinstance(price, bool) or parse_krw(price) is None or parse_krw(price) < 1 or isinstance(price, str):
        return ("INVALID_PARAMETER", "price는 1원 이상의 정수여야 합니다.")
    order_id, order_name = params.get("order_id"), params.get("order_name")
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id) > 100:
        return ("INVALID_PARAMETER", "order_id가 필요합니다 (100자 이하).")
    if not isinstance(order_name, str) or not order_name.strip() or len(order_name) > 100:
        return ("INVALID_PARAMETER", "order_name이 필요합니다 (100자 이하).")
    tax_free = params.get("tax_free", 0)
    if tax_free is not None and (parse_krw(tax_free) is None or not 0 <= parse_krw(tax_free) <= parse_krw(price)):
        return ("INVALID_PARAMETER", "tax_free는 0 이상, price 이하의 정수여야 합니다.")
    method = params.get("method")
    if method not in (None, "") and method not in METHODS:
        return (
            "INVALID_PARAMETER",
            f"샌드박스가 흉내 내지 않는 결제수단입니다: {str(method)[:30]} ({', '.join(sorted(set(s for _n, s in METHODS.values())))})",
        )
    items = params.get("items")
    if items:
        # bootpay.md §2: price must equal the sum of items[].price x qty, or the payment fails.
        total = 0
        for item in items if isinstance(items, list) else [None]:
            qty, value = _get(item, "qty"), _get(item, "price")
            if parse_krw(qty) is None or parse_krw(value) is None or isinstance(qty, bool) or isinstance(value, bool):
                return ("INVALID_PARAMETER", "items에는 id, name, qty, price가 필요합니다.")
            total += parse_krw(qty) * parse_krw(value)
        if total != parse_krw(price):
            # unconfirmed: the code of this refusal.
            return ("RC_PRICE_NOT_MATCH", f"결제 금액({parse_krw(price)})과 상품 금액의 합({total})이 일치하지 않습니다.")
    return None


def _cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Cache-Control"] = "no-store"
    return response


def _sdk_error(code: str, message: str, *, status: int = 400) -> HttpResponse:
    """What the SDK rejects ``requestPayment`` with: ``{event: "error", error_code, message}``."""
    body = {"event": "error", "error_code": code, "message": message}
    return _cors(HttpResponse(dumps(body), status=status, content_type="application/json"))


# --- the Python API (what tests call) -------------------------------------------


def _bootpay() -> BootpaySandbox:
    from .base import emulator

    return emulator("bootpay")


def authenticate(order_id: str, price: int, **kwargs) -> dict[str, Any]:
    """A buyer pays in the window (no browser): ``{"event", "receipt_id", "order_id", "price"}``.

    With ``separately_confirmed=True`` (the default) the receipt waits in status
    2 for ``POST /v2/confirm``; ``method="vbank"`` issues a virtual account.
    """
    return _bootpay().act_authenticate(order_id, price, **kwargs)


def deposit(receipt_id: str) -> dict[str, Any]:
    """The money for a virtual account arrives."""
    return _bootpay().act_deposit(receipt_id)


def cancel_at_pg(receipt_id: str, amount: int | None = None, message: str = "부트페이 관리자 취소") -> dict[str, Any]:
    """A cancel the shop did not ask for (Bootpay's admin), in full or of ``amount``."""
    return _bootpay().act_cancel(receipt_id, amount, message)


def expire_tokens() -> dict[str, int]:
    """Every legacy access token handed out so far expires now."""
    return _bootpay().act_expire_tokens()


def receipt(receipt_id: str) -> dict[str, Any]:
    """The Receipt of ``receipt_id``."""
    return _bootpay().act_receipt(receipt_id)
