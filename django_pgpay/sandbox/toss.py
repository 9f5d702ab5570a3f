"""Toss Payments, emulated: the core API (version 2022-11-16), the v2 JS SDK and its payment window.

Mounted under ``sandbox/toss/`` (see :mod:`django_pgpay.sandbox.urls`), so a
Toss client works unchanged with its base URL set to
``http://HOST/sandbox/toss`` and its SDK URL to
``http://HOST/sandbox/toss/js/v2/standard``. The contract followed is
``shared/gateways/toss.md`` (Toss's docs, official samples and SDKs):

- ``POST /v1/payments/confirm``, ``POST /v1/payments/{paymentKey}/cancel``,
  ``GET /v1/payments/{paymentKey}``, ``GET /v1/payments/orders/{orderId}``;
- Basic auth with the secret key and a trailing colon, ``{code, message}``
  errors with Toss's HTTP statuses, ``Accept-Language: en-US``;
- ``Idempotency-Key`` (300 chars, 15 days, identity = key + secret key + URL
  + method, 409 while in flight) and ``TossPayments-Test-Code``;
- the 10-minute confirm window, virtual accounts (``WAITING_FOR_DEPOSIT``,
  ``secret``, deposits later), ``PAYMENT_STATUS_CHANGED`` and
  ``DEPOSIT_CALLBACK`` webhooks with Toss's retry schedule.

Where toss.md marks a fact "unconfirmed" the sandbox picks the likeliest
answer and says so in a comment (search "unconfirmed").
"""

from __future__ import annotations

import base64
import copy
import hmac
import re
import secrets
import string
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import path, re_path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import clock, faults, lifecycle, webhooks
from .base import CONFIRM_FAULT_CHOICES, Answer, ApiContext, ApiError, Problem, SandboxPG, dumps, guard, loads
from .lifecycle import Ledger, RefundFields, Refusal, Stage
from .models import SandboxPayment
from .window import Choice, PaymentWindow
from .window import payload as window_payload
from .wire import KST, kst, parse_krw, when
from .wire import is_http_url as _is_http_url
from .wire import with_query as _with_query

API_VERSION = "2022-11-16"
ORDER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_ALNUM = string.ascii_letters + string.digits

#: HTTP status, Korean message, English message of each error code (toss.md §7).
ERRORS: dict[str, tuple[int, str, str]] = {
    "INVALID_REQUEST": (400, "잘못된 요청입니다.", "The request is invalid."),
    "ALREADY_PROCESSED_PAYMENT": (400, "이미 처리된 결제 입니다.", "This payment has already been processed."),
    "PROVIDER_ERROR": (
        400,
        "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요.",
        "A temporary error occurred. Please try again shortly.",
    ),
    "CARD_PROCESSING_ERROR": (400, "카드사에서 오류가 발생했습니다.", "The card company reported an error."),
    "BELOW_MINIMUM_AMOUNT": (
        400,
        "신용카드는 결제금액이 100원 이상, 계좌는 200원이상부터 결제가 가능합니다.",
        "Cards need 100 KRW or more, accounts 200 KRW or more.",
    ),
    "INVALID_CARD_EXPIRATION": (400, "카드 정보를 다시 확인해주세요. (유효기간)", "Check the card's expiry date."),
    "INVALID_STOPPED_CARD": (400, "정지된 카드 입니다.", "This card is suspended."),
    "EXCEED_MAX_DAILY_PAYMENT_COUNT": (400, "하루 결제 가능 횟수를 초과했습니다.", "The daily number of payments was exceeded."),
    "EXCEED_MAX_PAYMENT_AMOUNT": (400, "하루 결제 가능 금액을 초과했습니다.", "The daily payment amount was exceeded."),
    # unconfirmed: widely observed as 400, not in Toss's documented table.
    "ALREADY_CANCELED_PAYMENT": (400, "이미 취소된 결제 입니다.", "This payment has already been cancelled."),
    "NOT_MATCHES_REFUNDABLE_AMOUNT": (400, "잔액 결과가 일치하지 않습니다.", "The refundable amount does not match."),
    "INVALID_REFUND_ACCOUNT_INFO": (
        400,
        "환불 계좌번호와 예금주명이 일치하지 않습니다.",
        "The refund account number and holder do not match.",
    ),
    "INVALID_BANK": (400, "유효하지 않은 은행입니다.", "The bank is not valid."),
    "REFUND_REJECTED": (400, "환불이 거절됐습니다. 결제사에 문의 부탁드립니다.", "The refund was rejected."),
    "ALREADY_REFUND_PAYMENT": (400, "이미 환불된 결제입니다.", "This payment has already been refunded."),
    "INVALID_IDEMPOTENCY_KEY": (400, "멱등키는 300자 이하여야 합니다.", "An idempotency key must be 300 characters or fewer."),
    "UNAUTHORIZED_KEY": (401, "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.", "The secret key or client key is not authorized."),
    "REJECT_CARD_PAYMENT": (
        403,
        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
        "The payment failed: limit exceeded or insufficient balance.",
    ),
    "REJECT_CARD_COMPANY": (403, "결제 승인이 거절되었습니다.", "The card company rejected the payment."),
    "FDS_ERROR": (
        403,
        "[토스페이먼츠] 위험거래가 감지되어 결제가 제한됩니다.",
        "A risky transaction was detected; the payment is restricted.",
    ),
    "NOT_CANCELABLE_AMOUNT": (403, "취소 할 수 없는 금액 입니다.", "This amount cannot be cancelled."),
    "NOT_CANCELABLE_PAYMENT": (403, "취소 할 수 없는 결제 입니다.", "This payment cannot be cancelled."),
    "EXCEED_MAX_REFUND_DUE": (403, "환불 가능한 기간이 지났습니다.", "The refund period has passed."),
    "NOT_ALLOWED_PARTIAL_REFUND": (
        403,
        "에스크로 주문, 현금 카드 결제일 때는 부분 환불이 불가합니다.",
        "Partial refunds are not allowed for this payment.",
    ),
    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT": (
        403,
        "입금 대기중인 결제는 부분 환불이 불가합니다.",
        "A payment waiting for its deposit cannot be partly refunded.",
    ),
    "FORBIDDEN_CONSECUTIVE_REQUEST": (
        403,
        "반복적인 요청은 허용되지 않습니다. 잠시 후 다시 시도해주세요.",
        "Repeated requests are not allowed. Please try again shortly.",
    ),
    "INCORRECT_BASIC_AUTH_FORMAT": (
        403,
        "잘못된 요청입니다. ':' 를 포함해 인코딩해주세요.",
        "Invalid request: encode the key with a trailing ':'.",
    ),
    "NOT_FOUND_PAYMENT": (404, "존재하지 않는 결제 입니다.", "The payment does not exist."),
    "NOT_FOUND_PAYMENT_SESSION": (
        404,
        "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다.",
        "The payment session expired; its data no longer exists.",
    ),
    "NOT_FOUND": (404, "존재하지 않는 정보 입니다.", "Not found."),
    "METHOD_NOT_ALLOWED": (405, "허용되지 않은 HTTP 메서드입니다.", "This HTTP method is not allowed here."),
    "IDEMPOTENT_REQUEST_PROCESSING": (409, "이전 멱등 요청이 처리중입니다.", "The previous idempotent request is still being processed."),
    "FAILED_INTERNAL_SYSTEM_PROCESSING": (
        500,
        "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요.",
        "Internal processing failed. Please try again shortly.",
    ),
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": (
        500,
        "결제가 완료되지 않았어요. 다시 시도해주세요.",
        "The payment was not completed. Please try again.",
    ),
    "UNKNOWN_PAYMENT_ERROR": (
        500,
        "결제에 실패했어요. 같은 문제가 반복된다면 은행이나 카드사로 문의해주세요.",
        "The payment failed. Contact your bank or card company if it happens again.",
    ),
    "COMMON_ERROR": (
        500,
        "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요.",
        "A temporary error occurred. Please try again shortly.",
    ),
    "FAILED_REFUND_PROCESS": (
        500,
        "은행 응답시간 지연이나 일시적인 오류로 환불요청에 실패했습니다.",
        "The refund failed because of a bank delay or a temporary error.",
    ),
    "FAILED_PARTIAL_REFUND": (
        500,
        "은행 점검, 해약 계좌 등의 사유로 부분 환불이 실패했습니다.",
        "The partial refund failed (bank maintenance or a closed account).",
    ),
    "FAILED_METHOD_HANDLING_CANCEL": (
        500,
        "취소 중 결제 시 사용한 결제 수단 처리과정에서 일시적인 에러가 발생했습니다.",
        "A temporary error occurred while cancelling with the payment method.",
    ),
}

#: Codes the payment window sends to ``failUrl`` (toss.md §2).
WINDOW_ERRORS: dict[str, tuple[str, str]] = {
    "PAY_PROCESS_CANCELED": ("사용자에 의해 결제가 취소되었습니다.", "The buyer cancelled the payment."),
    "PAY_PROCESS_ABORTED": ("결제 진행 중 승인에 실패하여 결제가 중단되었습니다.", "The payment was aborted during approval."),
    "REJECT_CARD_COMPANY": ("카드사에서 결제를 거절했습니다.", "The card company rejected the payment."),
    "DUPLICATED_ORDER_ID": (
        "이미 승인 및 취소가 진행된 중복된 주문번호 입니다. 다른 주문번호로 진행해주세요.",
        "This order id was already approved or cancelled; use another order id.",
    ),
}

#: SDK v2 ``method`` -> the Korean ``method`` of the Payment object (the ones emulated).
METHODS: dict[str, str] = {
    "CARD": "카드",
    "TRANSFER": "계좌이체",
    "VIRTUAL_ACCOUNT": "가상계좌",
    "MOBILE_PHONE": "휴대폰",
    "CULTURE_GIFT_CERTIFICATE": "문화상품권",
}
#: Korean ``method`` -> English (``Accept-Language: en-US``; toss.md §1 confirms ``"CARD"``).
METHODS_EN: dict[str, str] = {
    "카드": "CARD",
    "가상계좌": "VIRTUAL_ACCOUNT",
    "간편결제": "EASY_PAY",
    "휴대폰": "MOBILE_PHONE",
    "계좌이체": "TRANSFER",
    "문화상품권": "CULTURE_GIFT_CERTIFICATE",
    "도서문화상품권": "BOOK_GIFT_CERTIFICATE",
    "게임문화상품권": "GAME_GIFT_CERTIFICATE",
}
#: Statuses after which ``confirm`` answers ALREADY_PROCESSED_PAYMENT.
PROCESSED = frozenset({"DONE", "WAITING_FOR_DEPOSIT", "CANCELED", "PARTIAL_CANCELED", "ABORTED"})
#: Statuses that make an order id unusable for a new payment window.
ORDER_ID_TAKEN = frozenset({"DONE", "WAITING_FOR_DEPOSIT", "CANCELED", "PARTIAL_CANCELED"})
#: Toss's statuses in the lifecycle's terms (any other: closed).
STAGES = {
    "DONE": Stage.PAID,
    "PARTIAL_CANCELED": Stage.PAID,
    "WAITING_FOR_DEPOSIT": Stage.AWAITING_DEPOSIT,
    "CANCELED": Stage.CANCELED,
}
STAGES_CANCELABLE = frozenset({"DONE", "PARTIAL_CANCELED", "WAITING_FOR_DEPOSIT"})
#: Where a cancel carries the refund account of a deposited virtual account (toss.md §4).
REFUND_FIELDS = RefundFields(bank="bank", number="accountNumber", holder="holderName")


# --- small helpers -------------------------------------------------------------


def webhook_time(moment: datetime) -> str:
    """A webhook's ``createdAt``: Korean local time, microseconds, no offset (toss.md §6)."""
    return moment.astimezone(KST).replace(tzinfo=None).isoformat(timespec="microseconds")


def _random(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _transaction_key() -> str:
    return secrets.token_hex(16).upper()


#: The customer key Toss's SDK sends for a buyer without an account (``TossPayments.ANONYMOUS``).
ANONYMOUS_CUSTOMER = "@@ANONYMOUS"
#: The gateway's window parameters ``checkout/toss.html`` passes on to ``requestPayment`` when set.
WINDOW_EXTRAS = ("customerEmail", "customerName", "customerMobilePhone", "virtualAccount")


def sdk_payload(params: dict[str, Any]) -> dict[str, Any]:
    """What the shop's Toss window and this sandbox's SDK post to ``toss/checkout`` for the gateway's ``params``.

    For a buyer without a browser (``manage.py demo_orders``, the flash-sale test
    and benchmark): the request ``django_pgpay/checkout/toss.html`` builds, with
    what the SDK adds (client key, customer key, flow).
    """
    payload = {name: params[name] for name in ("method", "amount", "orderId", "orderName", "successUrl", "failUrl")}
    payload.update({name: params[name] for name in WINDOW_EXTRAS if params.get(name)})
    payload.update(clientKey=params["clientKey"], customerKey=params.get("customerKey") or ANONYMOUS_CUSTOMER, flow="payment")
    return payload


def split_vat(amount: int, tax_free: int = 0) -> tuple[int, int]:
    """(suppliedAmount, vat) of ``amount``: VAT is 1/11 of the taxable part, rounded half up."""
    taxable = max(amount - tax_free, 0)
    vat = int((Decimal(taxable) / 11).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return taxable - vat, vat


# --- the emulator ----------------------------------------------------------------


class TossSandbox(PaymentWindow, SandboxPG):
    """Toss Payments' core API, SDK and payment window (see the module docstring).

    Settings, ``PGPAY_SANDBOX["TOSS"]``: ``SECRET_KEYS`` and ``CLIENT_KEYS``
    (lists of made-up ``test_`` keys), ``WEBHOOK_URL``, and optionally
    ``WEBHOOK_EVENTS`` (default both payment events), ``MID`` (``"tsandbox"``),
    ``CONFIRM_WINDOW`` (600 s), ``READY_WINDOW`` (1800 s),
    ``VIRTUAL_ACCOUNT_HOURS`` (168) and ``CONSECUTIVE_CANCEL_SECONDS`` (1).
    """

    name = "toss"
    settings_section = "TOSS"
    title = "Toss Payments"
    #: 7 retries at 1, 4, 16, 64, 256, 1024, 4096 minutes (toss.md §6).
    retry_schedule = (60, 240, 960, 3840, 15360, 61440, 245760)
    idempotency_header = "Idempotency-Key"
    idempotency_key_max = 300
    idempotency_lifetime = timedelta(days=15)
    window_template = "pgpay_sandbox/toss/pay.html"
    window_error_template = "pgpay_sandbox/toss/error.html"
    window_not_found = ("NOT_FOUND_PAYMENT", "Unknown payment.")
    window_fault_choices = CONFIRM_FAULT_CHOICES
    #: Older action names (base.ACTION_NAMES gives the uniform ones).
    action_aliases = {"authenticate": "pay", "payment": "state"}
    problem_codes = {
        Problem.MALFORMED_BODY: "INVALID_REQUEST",
        Problem.IDEMPOTENCY_KEY_INVALID: "INVALID_IDEMPOTENCY_KEY",
        Problem.IDEMPOTENCY_MISMATCH: "IDEMPOTENCY_MISMATCH",
        Problem.IDEMPOTENCY_IN_FLIGHT: "IDEMPOTENT_REQUEST_PROCESSING",
        Problem.INTERNAL: "FAILED_INTERNAL_SYSTEM_PROCESSING",
        Problem.INTERNAL_AFTER_COMMIT: "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
    }
    refusals = {
        Refusal.ALREADY_CANCELED: "ALREADY_CANCELED_PAYMENT",
        Refusal.NOT_CANCELABLE: "NOT_CANCELABLE_PAYMENT",
        Refusal.BALANCE_MISMATCH: "NOT_MATCHES_REFUNDABLE_AMOUNT",
        Refusal.INVALID_AMOUNT: "INVALID_REQUEST",
        Refusal.OVER_BALANCE: "NOT_CANCELABLE_AMOUNT",
        Refusal.PARTIAL_UNPAID_ACCOUNT: "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
        Refusal.PARTIAL_NOT_ALLOWED: "NOT_ALLOWED_PARTIAL_REFUND",
        # unconfirmed: the code for a missing or bad refund account (toss.md §4); INVALID_REQUEST here.
        Refusal.REFUND_ACCOUNT_REQUIRED: ("INVALID_REQUEST", "가상계좌 결제 취소에는 환불 계좌 정보(refundReceiveAccount)가 필요합니다."),
        Refusal.REFUND_ACCOUNT_INVALID: (
            "INVALID_REQUEST",
            "refundReceiveAccount에는 bank, accountNumber(숫자만), holderName이 필요합니다.",
        ),
    }

    # --- settings ----------------------------------------------------------

    def _keys(self, name: str) -> list[str]:
        keys = self.config().get(name) or []
        return [k for k in keys if isinstance(k, str) and k] if isinstance(keys, (list, tuple)) else []

    def _seconds(self, name: str, default: float) -> timedelta:
        return timedelta(seconds=float(self.config().get(name, default)))

    @property
    def mid(self) -> str:
        return str(self.config().get("MID") or "tsandbox")

    # --- protocol --------------------------------------------------------------

    def language(self, request: HttpRequest) -> str:
        return "en" if request.headers.get("Accept-Language", "").strip().lower().startswith("en") else "ko"

    def authenticate(self, ctx: ApiContext) -> str:
        header = ctx.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            raise ApiError("UNAUTHORIZED_KEY")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError("INCORRECT_BASIC_AUTH_FORMAT") from exc
        if ":" not in decoded:
            raise ApiError("INCORRECT_BASIC_AUTH_FORMAT")
        key = decoded.split(":", 1)[0].encode("utf-8")
        if not any(hmac.compare_digest(key, known.encode("utf-8")) for known in self._keys("SECRET_KEYS")):
            raise ApiError("UNAUTHORIZED_KEY")
        return key.decode("utf-8")

    def test_code(self, ctx: ApiContext) -> ApiError | None:
        code = ctx.request.headers.get("TossPayments-Test-Code", "").strip().upper()
        if not code:
            return None
        if code in ERRORS:
            return ApiError(code)
        return ApiError(
            "INVALID_REQUEST",
            f"샌드박스가 모르는 테스트 코드입니다: {code[:60]}" if ctx.lang == "ko" else f"Unknown test code for the sandbox: {code[:60]}",
        )

    def error_answer(self, ctx: ApiContext, error: ApiError) -> Answer:
        status, ko, en = ERRORS.get(error.code, (400, error.code, error.code))
        message = error.message or (en if ctx.lang == "en" else ko)
        return Answer.json(error.status or status, {"code": error.code, "message": message})

    # --- the Payment object -----------------------------------------------------

    def render(self, payment: SandboxPayment, lang: str = "ko") -> dict[str, Any]:
        """The Payment object as the API returns it."""
        state = copy.deepcopy(payment.state)
        if lang == "en" and state.get("method") in METHODS_EN:
            state["method"] = METHODS_EN[state["method"]]
        return state

    def answer(self, ctx: ApiContext, payment: SandboxPayment) -> Answer:
        return Answer.json(200, self.render(payment, ctx.lang))

    def _new_state(self, *, key, order_id, order_name, amount, tax_free, method, now, checkout_url) -> dict[str, Any]:
        supplied, vat = split_vat(amount, tax_free)
        return {
            "mId": self.mid,
            "lastTransactionKey": None,
            "paymentKey": key,
            "orderId": order_id,
            "orderName": order_name,
            "taxExemptionAmount": 0,
            "status": "READY",
            "requestedAt": kst(now),
            "approvedAt": None,
            "useEscrow": False,
            "cultureExpense": False,
            "card": None,
            "virtualAccount": None,
            "transfer": None,
            "mobilePhone": None,
            "giftCertificate": None,
            "cashReceipt": None,
            "cashReceipts": None,
            "discount": None,
            "cancels": None,
            "secret": None,
            "type": "NORMAL",
            "easyPay": None,
            "country": "KR",
            "failure": None,
            "isPartialCancelable": True,
            "receipt": None,
            "checkout": {"url": checkout_url},
            "currency": "KRW",
            "totalAmount": amount,
            "balanceAmount": amount,
            "suppliedAmount": supplied,
            "vat": vat,
            "taxFreeAmount": tax_free,
            "method": METHODS.get(method),
            "version": API_VERSION,
            "metadata": None,
        }

    def create_payment(
        self,
        *,
        order_id: str,
        amount: int,
        order_name: str,
        method: str | None,
        origin: str,
        now: datetime,
        session: dict[str, Any],
        tax_free: int = 0,
    ) -> SandboxPayment:
        """A READY payment, as ``requestPayment`` makes it when the window opens."""
        key = f"tsbx{now.astimezone(KST).strftime('%Y%m%d%H%M%S')}{_random(10)}"
        checkout_url = origin + reverse("pgpay_sandbox:toss-pay", args=[key])
        state = self._new_state(
            key=key,
            order_id=order_id,
            order_name=order_name,
            amount=amount,
            tax_free=tax_free,
            method=method,
            now=now,
            checkout_url=checkout_url,
        )
        session = {**session, "origin": origin, "authenticated": False, "requestedMethod": method}
        return SandboxPayment.objects.create(pg=self.name, key=key, order_id=order_id, status="READY", state=state, session=session)

    def _save(self, payment: SandboxPayment, status: str | None = None) -> None:
        if status is not None:
            payment.state["status"] = status
        payment.status = payment.state["status"]
        payment.due_at = self._next_due(payment)
        payment.save(update_fields=["state", "session", "status", "due_at", "updated_at"])

    def _next_due(self, payment: SandboxPayment) -> datetime | None:
        status = payment.state["status"]
        if status == "IN_PROGRESS":
            started = when(payment.session.get("authenticatedAt"))
            return started + self._seconds("CONFIRM_WINDOW", 600) if started else None
        if status == "WAITING_FOR_DEPOSIT":
            return lifecycle.next_due(when(payment.session.get("dueDate")), lifecycle.deposit_at(payment.session))
        return None

    def _emit(self, payment: SandboxPayment, now: datetime, origin: str = "", *, deposit: bool = False) -> None:
        """Queue the webhooks of a change (inside the change's transaction)."""
        url = self.webhook_url(origin or payment.session.get("origin", ""))
        if not url:
            return
        events = self.config().get("WEBHOOK_EVENTS") or ("PAYMENT_STATUS_CHANGED", "DEPOSIT_CALLBACK")
        if "PAYMENT_STATUS_CHANGED" in events:
            body = {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": webhook_time(now), "data": self.render(payment)}
            webhooks.enqueue(self.name, "PAYMENT_STATUS_CHANGED", dumps(body), url=url, payment_key=payment.key, now=now)
        if deposit and "DEPOSIT_CALLBACK" in events and payment.state.get("secret"):
            # Flat body (toss.md §6); transactionKey is unconfirmed but commonly seen.
            body = {
                "createdAt": webhook_time(now),
                "secret": payment.state["secret"],
                "status": payment.state["status"],
                "transactionKey": payment.state.get("lastTransactionKey"),
                "orderId": payment.order_id,
            }
            webhooks.enqueue(self.name, "DEPOSIT_CALLBACK", dumps(body), url=url, payment_key=payment.key, now=now)

    def _is_virtual_account(self, payment: SandboxPayment) -> bool:
        return payment.state.get("method") == "가상계좌"

    def ledger(self, payment: SandboxPayment) -> Ledger:
        """The payment's money in the lifecycle's terms."""
        state = payment.state
        return Ledger(
            amount=state["totalAmount"],
            canceled=state["totalAmount"] - state["balanceAmount"],
            stage=STAGES.get(state["status"], Stage.CLOSED),
            virtual_account=self._is_virtual_account(payment),
            partial_cancelable=state.get("isPartialCancelable", True),
            refund_account_on_file=bool((state.get("virtualAccount") or {}).get("refundReceiveAccount")),
        )

    def malformed_body(self) -> str:
        return '<html><head><title>502 Bad Gateway</title></head><body>{"paymentKey": "'

    def describe(self, payment: SandboxPayment) -> dict[str, Any]:
        state = payment.state
        return {"amount": state.get("totalAmount"), "balance": state.get("balanceAmount"), "method": state.get("method")}

    # --- state changes (each runs inside the caller's transaction) ----------------

    def refresh(self, payment: SandboxPayment, now: datetime, origin: str = "") -> bool:
        """Apply what time did to ``payment`` by ``now``; True when it changed."""
        status = payment.state["status"]
        if status == "READY":
            if now > when(payment.session.get("openedAt") or payment.created_at.isoformat()) + self._seconds("READY_WINDOW", 1800):
                self._save(payment, "EXPIRED")
                return True
            return False
        if status == "IN_PROGRESS":
            started = when(payment.session.get("authenticatedAt"))
            if started and now > started + self._seconds("CONFIRM_WINDOW", 600):
                # toss.md §2: not confirmed within 10 minutes -> EXPIRED (failure EXPIRED_PAYMENT observed).
                payment.state["failure"] = {"code": "EXPIRED_PAYMENT", "message": "결제 유효 시간이 지나 만료되었습니다."}
                self._save(payment, "EXPIRED")
                self._emit(payment, now, origin)
                return True
            return False
        if status == "WAITING_FOR_DEPOSIT":
            if lifecycle.deposit_has_come(payment.session, now):
                self._deposit(payment, now, origin)
                return True
            if lifecycle.deadline_passed(payment.session, now):
                payment.state["virtualAccount"]["expired"] = True
                self._save(payment, "EXPIRED")
                self._emit(payment, now, origin)
                return True
        return False

    def _authenticate(self, payment: SandboxPayment, method: str, now: datetime, *, deposit_after: float | None = None) -> None:
        """The buyer finished the window: READY -> IN_PROGRESS; the confirm window starts."""
        payment.state["method"] = METHODS[method]
        payment.session.update(authenticated=True, authenticatedAt=now.isoformat(), method=method)
        lifecycle.defer_deposit(payment.session, deposit_after)
        self._save(payment, "IN_PROGRESS")

    def _approve(self, payment: SandboxPayment, now: datetime, origin: str) -> None:
        """What confirm does: DONE, or a virtual account issued (WAITING_FOR_DEPOSIT)."""
        state = payment.state
        amount = state["totalAmount"]
        state["lastTransactionKey"] = _transaction_key()
        receipt_url = payment.session.get("origin", origin) + reverse("pgpay_sandbox:toss-receipt", args=[payment.key])
        state["receipt"] = {"url": receipt_url}
        method = payment.session.get("method") or "CARD"
        if method == "VIRTUAL_ACCOUNT":
            hours = float(payment.session.get("validHours") or self.config().get("VIRTUAL_ACCOUNT_HOURS", 168))
            due = now + timedelta(hours=hours)
            state["virtualAccount"] = {
                "accountType": "일반",
                "accountNumber": _random(14, string.digits),
                "bankCode": "20",
                "customerName": payment.session.get("customerName") or "구매자",
                "dueDate": kst(due),
                "refundStatus": "NONE",
                "expired": False,
                "settlementStatus": "INCOMPLETED",
                "refundReceiveAccount": None,
            }
            state["secret"] = f"ps_{_random(28)}"
            payment.session["dueDate"] = due.isoformat()
            lifecycle.start_deposit_clock(payment.session, now)
            self._save(payment, "WAITING_FOR_DEPOSIT")
            self._emit(payment, now, origin, deposit=True)
            return
        state["approvedAt"] = kst(now)
        if method == "CARD":
            state["card"] = {
                "issuerCode": "11",
                "acquirerCode": "11",
                "number": "43301234****123*",
                "installmentPlanMonths": 0,
                "isInterestFree": False,
                "interestPayer": None,
                "approveNo": _random(8, string.digits),
                "useCardPoint": False,
                "cardType": "신용",
                "ownerType": "개인",
                "acquireStatus": "READY",
                "amount": amount,
            }
        elif method == "TRANSFER":
            state["transfer"] = {"bankCode": "20", "settlementStatus": "INCOMPLETED"}
        elif method == "MOBILE_PHONE":
            state["mobilePhone"] = {
                "customerMobilePhone": payment.session.get("customerMobilePhone") or "01000000000",
                "settlementStatus": "INCOMPLETED",
                "receiptUrl": receipt_url,
            }
        elif method == "CULTURE_GIFT_CERTIFICATE":
            state["giftCertificate"] = {"approveNo": _random(8, string.digits), "settlementStatus": "INCOMPLETED"}
        self._save(payment, "DONE")
        self._emit(payment, now, origin)

    def _deposit(self, payment: SandboxPayment, now: datetime, origin: str = "") -> None:
        """The buyer's bank transfer reaches a virtual account: WAITING_FOR_DEPOSIT -> DONE."""
        payment.state["approvedAt"] = kst(now)
        payment.state["lastTransactionKey"] = _transaction_key()
        lifecycle.clear_deposit(payment.session)
        self._save(payment, "DONE")
        self._emit(payment, now, origin, deposit=True)

    def _cancel(
        self,
        payment: SandboxPayment,
        now: datetime,
        *,
        amount: int | None,
        reason: str,
        origin: str = "",
        refundable: int | None = None,
        refund_account: Any = None,
        tax_free: int = 0,
        by_pg: bool = False,
    ) -> None:
        """Give back ``amount`` (None: the whole balance); raises ApiError when Toss refuses."""
        state = payment.state
        guard_window = self._seconds("CONSECUTIVE_CANCEL_SECONDS", 1)
        last = when(payment.session.get("lastCancelAt"))
        if state["status"] in STAGES_CANCELABLE and not by_pg and last is not None and guard_window and now - last < guard_window:
            # toss.md §4: two cancels of one payment within 1 s -> only the first runs.
            raise ApiError("FORBIDDEN_CONSECUTIVE_REQUEST")
        plan = self.plan_cancel(
            self.ledger(payment),
            amount,
            expected_balance=refundable,
            refund_account=refund_account,
            refund_fields=REFUND_FIELDS,
            by_pg=by_pg,
        )
        amount, left, refunds_money = plan.amount, plan.left, plan.refunds_by_transfer
        entry = {
            "transactionKey": _transaction_key(),
            "cancelReason": reason,
            "taxExemptionAmount": 0,
            "canceledAt": kst(now),
            "transferDiscountAmount": 0,
            "easyPayDiscountAmount": 0,
            "receiptKey": None,
            "cancelAmount": amount,
            "taxFreeAmount": tax_free,
            "refundableAmount": left,
            "cancelStatus": "DONE",
            "cancelRequestId": None,
        }
        state["cancels"] = [*(state.get("cancels") or []), entry]
        state["balanceAmount"] = left
        state["taxFreeAmount"] = max(state.get("taxFreeAmount", 0) - tax_free, 0)
        state["suppliedAmount"], state["vat"] = split_vat(left, state["taxFreeAmount"])
        state["lastTransactionKey"] = entry["transactionKey"]
        if refunds_money:
            state["virtualAccount"]["refundStatus"] = "COMPLETED"
        if state.get("card") and left == 0:
            state["card"]["acquireStatus"] = "CANCELED"
        payment.session["lastCancelAt"] = now.isoformat()
        self._save(payment, "CANCELED" if left == 0 else "PARTIAL_CANCELED")
        self._emit(payment, now, origin, deposit=self._is_virtual_account(payment))

    # --- the API -----------------------------------------------------------------

    def _locked(self, key: Any) -> SandboxPayment | None:
        if not isinstance(key, str) or not key:
            return None
        return SandboxPayment.objects.select_for_update().filter(pg=self.name, key=key).first()

    def _match_keys(self, payment_key: Any, order_id: Any = None) -> list[str]:
        keys = [k for k in (payment_key, order_id) if isinstance(k, str) and k]
        if isinstance(payment_key, str) and payment_key and not order_id:
            found = SandboxPayment.objects.filter(pg=self.name, key=payment_key).values_list("order_id", flat=True).first()
            if found:
                keys.append(found)
        return keys

    def api_confirm(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        data = ctx.data
        if not isinstance(data, dict):
            raise ApiError("INVALID_REQUEST")
        key, order_id, amount = data.get("paymentKey"), data.get("orderId"), parse_krw(data.get("amount"))
        if not isinstance(key, str) or not key or not isinstance(order_id, str) or not order_id or amount is None or amount < 1:
            raise ApiError("INVALID_REQUEST")
        payment = self._locked(key)
        if payment is None:
            raise ApiError("NOT_FOUND_PAYMENT")
        self.refresh(payment, ctx.now, ctx.origin)
        # unconfirmed: the code Toss gives a mismatch (toss.md §3); INVALID_REQUEST here.
        if order_id != payment.order_id:
            return self.error_answer(
                ctx,
                ApiError("INVALID_REQUEST", _msg(ctx, "주문번호가 결제와 일치하지 않습니다.", "The orderId does not match the payment.")),
            )
        if amount != payment.state["totalAmount"]:
            return self.error_answer(
                ctx, ApiError("INVALID_REQUEST", _msg(ctx, "결제 금액이 일치하지 않습니다.", "The amount does not match the payment."))
            )
        status = payment.state["status"]
        if status in PROCESSED:
            return self.error_answer(ctx, ApiError("ALREADY_PROCESSED_PAYMENT"))
        if status != "IN_PROGRESS":  # READY (window not finished) or EXPIRED
            return self.error_answer(ctx, ApiError("NOT_FOUND_PAYMENT_SESSION"))
        if fault is not None and fault.kind == "decline":
            code = str(fault.param("code", "REJECT_CARD_COMPANY"))
            error = ApiError(code, fault.param("message"), status=fault.param("status"))
            answer = self.error_answer(ctx, error)
            payment.state["failure"] = {"code": code, "message": loads(answer.body)["message"]}
            self._save(payment, "ABORTED")
            self._emit(payment, ctx.now, ctx.origin)
            return answer
        self._approve(payment, ctx.now, ctx.origin)
        return self.answer(ctx, payment)

    def api_cancel(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_key: str = "") -> Answer:
        data = ctx.data
        if not isinstance(data, dict):
            raise ApiError("INVALID_REQUEST")
        reason = data.get("cancelReason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
            raise ApiError("INVALID_REQUEST", _msg(ctx, "cancelReason은 필수 값입니다.", "cancelReason is required."))
        amount = None
        if data.get("cancelAmount") is not None:
            amount = parse_krw(data["cancelAmount"])
            if amount is None or amount < 1:
                raise ApiError("INVALID_REQUEST")
        refundable = None
        if data.get("refundableAmount") is not None:
            refundable = parse_krw(data["refundableAmount"])
            if refundable is None:
                raise ApiError("INVALID_REQUEST")
        tax_free = parse_krw(data.get("taxFreeAmount", 0))
        if tax_free is None or tax_free < 0:
            raise ApiError("INVALID_REQUEST")
        payment = self._locked(payment_key)
        if payment is None:
            raise ApiError("NOT_FOUND_PAYMENT")
        self.refresh(payment, ctx.now, ctx.origin)
        self._cancel(
            payment,
            ctx.now,
            amount=amount,
            reason=reason,
            origin=ctx.origin,
            refundable=refundable,
            refund_account=data.get("refundReceiveAccount"),
            tax_free=tax_free,
        )
        return self.answer(ctx, payment)

    def api_payment(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_key: str = "") -> Answer:
        payment = self._locked(payment_key)
        if payment is None:
            raise ApiError("NOT_FOUND_PAYMENT")
        self.refresh(payment, ctx.now, ctx.origin)
        return self.answer(ctx, payment)

    def api_order(self, ctx: ApiContext, fault: faults.Fault | None = None, order_id: str = "") -> Answer:
        # Only payments the buyer authenticated are known by order id; a window
        # that was closed or declined never made one.
        rows = SandboxPayment.objects.filter(pg=self.name, order_id=order_id).order_by("-id")
        found = next((p.key for p in rows.only("key", "session")[:50] if p.session.get("authenticated")), None)
        payment = self._locked(found) if found else None
        if payment is None:
            raise ApiError("NOT_FOUND_PAYMENT")
        self.refresh(payment, ctx.now, ctx.origin)
        return self.answer(ctx, payment)

    # --- views -------------------------------------------------------------------

    def view_confirm(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._method_not_allowed(request)
        return self.serve(
            request,
            "confirm",
            self.api_confirm,
            match=lambda ctx: self._match_keys(*(_get(ctx.data, "paymentKey"), _get(ctx.data, "orderId"))),
        )

    def view_cancel(self, request: HttpRequest, payment_key: str) -> HttpResponse:
        if request.method != "POST":
            return self._method_not_allowed(request)
        return self.serve(request, "cancel", self.api_cancel, match=lambda ctx: self._match_keys(payment_key), payment_key=payment_key)

    def view_payment(self, request: HttpRequest, payment_key: str) -> HttpResponse:
        if request.method != "GET":
            # The 2020 confirm path POST /v1/payments/{paymentKey} is not emulated
            # (whether Toss still answers it is unconfirmed, toss.md §9).
            return self._method_not_allowed(request)
        return self.serve(request, "lookup", self.api_payment, match=lambda ctx: self._match_keys(payment_key), payment_key=payment_key)

    def view_order(self, request: HttpRequest, order_id: str) -> HttpResponse:
        if request.method != "GET":
            return self._method_not_allowed(request)
        return self.serve(request, "lookup", self.api_order, match=lambda ctx: [order_id], order_id=order_id)

    def view_unknown(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        guard()
        ctx = ApiContext(request=request, now=clock.now(), lang=self.language(request))
        return self.error_answer(ctx, ApiError("NOT_FOUND")).response()

    def _method_not_allowed(self, request: HttpRequest) -> HttpResponse:
        guard()
        ctx = ApiContext(request=request, now=clock.now(), lang=self.language(request))
        return self.error_answer(ctx, ApiError("METHOD_NOT_ALLOWED")).response()

    def view_sdk(self, request: HttpRequest) -> HttpResponse:
        """The stand-in for ``https://js.tosspayments.com/v2/standard``."""
        guard()
        script = render_to_string(
            "pgpay_sandbox/toss/sdk.js",
            {"checkout_url": request.build_absolute_uri(reverse("pgpay_sandbox:toss-checkout"))},
        )
        response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
        response["Cache-Control"] = "no-store"
        response["Access-Control-Allow-Origin"] = "*"
        return response

    def view_checkout(self, request: HttpRequest) -> HttpResponse:
        """Where the SDK's ``requestPayment`` posts its parameters; opens the payment window."""
        guard()
        if request.method != "POST":
            return self.window_error(request, "INVALID_REQUEST", "POST only.", status=405)
        params = window_payload(request)
        if params is None:
            return self.window_error(request, "INVALID_REQUEST", "payload is not JSON.")
        client_key = params.get("clientKey")
        if not isinstance(client_key, str) or not any(
            hmac.compare_digest(client_key.encode(), k.encode()) for k in self._keys("CLIENT_KEYS")
        ):
            return self.window_error(
                request, "INVALID_CLIENT_KEY", "The client key is not one of PGPAY_SANDBOX['TOSS']['CLIENT_KEYS'].", status=401
            )
        method = params.get("method") or None
        amount = params.get("amount") if isinstance(params.get("amount"), dict) else {}
        value = parse_krw(amount.get("value"))
        order_id = params.get("orderId")
        order_name = params.get("orderName")
        problems = _checkout_problems(params, method, amount, value)
        if problems:
            return self.window_error(request, "INVALID_PARAMETER", " ".join(problems))
        if SandboxPayment.objects.filter(pg=self.name, order_id=order_id, status__in=ORDER_ID_TAKEN).exists():
            return _redirect_fail(request, params["failUrl"], "DUPLICATED_ORDER_ID", order_id)
        virtual = params.get("virtualAccount") if isinstance(params.get("virtualAccount"), dict) else {}
        now = clock.now()
        session = {
            "flow": "widget" if params.get("flow") == "widget" else "payment",
            "clientKey": client_key,
            "customerKey": str(params.get("customerKey") or "")[:300],
            "successUrl": params["successUrl"],
            "failUrl": params["failUrl"],
            "customerName": str(params.get("customerName") or "")[:100],
            "customerEmail": str(params.get("customerEmail") or "")[:100],
            "customerMobilePhone": str(params.get("customerMobilePhone") or "")[:20],
            "validHours": parse_krw(virtual.get("validHours")),
            "openedAt": now.isoformat(),
        }
        tax_free = parse_krw(params.get("taxFreeAmount", 0)) or 0
        with transaction.atomic():
            payment = self.create_payment(
                order_id=order_id,
                amount=value,
                order_name=order_name.strip(),
                method=method,
                origin=f"{request.scheme}://{request.get_host()}",
                now=now,
                session=session,
                tax_free=min(max(tax_free, 0), value),
            )
        return HttpResponseRedirect(reverse("pgpay_sandbox:toss-pay", args=[payment.key]), status=303)

    # --- the payment window (django_pgpay.sandbox.window) ---------------------------

    def window_refresh(self, payment: SandboxPayment, now: datetime, origin: str) -> None:
        self.refresh(payment, now, origin)

    def window_is_open(self, payment: SandboxPayment) -> bool:
        return payment.state["status"] == "READY"

    def window_context(self, payment: SandboxPayment) -> dict[str, Any]:
        state, session = payment.state, payment.session
        requested = session.get("requestedMethod")
        fail_url = session.get("failUrl")
        cancel = {"code": "PAY_PROCESS_CANCELED", "message": WINDOW_ERRORS["PAY_PROCESS_CANCELED"][0], "orderId": payment.order_id}
        return {
            "amount_display": f"{state['totalAmount']:,}",
            "requested_method": requested,
            "method_label": METHODS.get(requested or "", ""),
            "offers_payment": requested != "VIRTUAL_ACCOUNT",
            "offers_virtual_account": True,
            "fail_url": _with_query(fail_url, cancel) if fail_url else "",
        }

    def window_act(self, request: HttpRequest, payment: SandboxPayment, choice: Choice, now: datetime) -> HttpResponse | None:
        session = payment.session
        if choice.gives_up:
            code = "REJECT_CARD_COMPANY" if choice.action == "decline" else "PAY_PROCESS_CANCELED"
            payment.state["failure"] = {"code": code, "message": WINDOW_ERRORS[code][0]}
            self._save(payment, "ABORTED")
            return _redirect_fail(request, session["failUrl"], code, payment.order_id)
        if choice.action not in ("pay", "virtual_account"):
            return None
        requested = session.get("requestedMethod")
        if choice.action == "virtual_account":
            method = "VIRTUAL_ACCOUNT"
        else:
            method = requested if requested in METHODS else "CARD"
        self._authenticate(payment, method, now, deposit_after=choice.deposit_after if method == "VIRTUAL_ACCOUNT" else None)
        self.arm_window_fault(payment, choice)
        # paymentType=NORMAL is commonly seen on Toss's redirects (unconfirmed, toss.md §2).
        query = {"paymentType": "NORMAL", "orderId": payment.order_id, "paymentKey": payment.key, "amount": payment.state["totalAmount"]}
        return HttpResponseRedirect(_with_query(session["successUrl"], query))

    def view_receipt(self, request: HttpRequest, payment_key: str) -> HttpResponse:
        """What ``receipt.url`` shows."""
        guard()
        payment = SandboxPayment.objects.filter(pg=self.name, key=payment_key).first()
        if payment is None:
            return self.window_error(request, "NOT_FOUND_PAYMENT", "Unknown payment.", status=404)
        return render(request, "pgpay_sandbox/toss/receipt.html", {"payment": payment, "state": payment.state})

    def urlpatterns(self) -> list:
        api = csrf_exempt
        return [
            path("v1/payments/confirm", api(self.view_confirm), name="toss-confirm"),
            path("v1/payments/orders/<str:order_id>", api(self.view_order), name="toss-order"),
            path("v1/payments/<str:payment_key>/cancel", api(self.view_cancel), name="toss-cancel"),
            path("v1/payments/<str:payment_key>", api(self.view_payment), name="toss-payment"),
            re_path(r"^v1/(?P<rest>.*)$", api(self.view_unknown), name="toss-unknown"),
            path("js/v2/standard", self.view_sdk, name="toss-sdk"),
            path("checkout", csrf_exempt(self.view_checkout), name="toss-checkout"),
            path("pay/<str:key>", csrf_protect(self.view_pay), name="toss-pay"),
            path("receipt/<str:payment_key>", self.view_receipt, name="toss-receipt"),
        ]

    # --- what people and banks do (tests, control API, dashboard) -----------------

    def sdk_url(self, base: str) -> str:
        return base + "/js/v2/standard"

    def dashboard_actions(self, payment: SandboxPayment) -> list[tuple[str, str]]:
        status = payment.status
        buttons = []
        if status == "WAITING_FOR_DEPOSIT":
            buttons.append(("deposit", _("Deposit")))
        if status == "DONE" and payment.state.get("virtualAccount"):
            buttons.append(("revert-deposit", _("Revert deposit")))
        if status in ("DONE", "PARTIAL_CANCELED", "WAITING_FOR_DEPOSIT"):
            buttons.append(("cancel", _("Cancel at the PG")))
        if status in ("IN_PROGRESS", "WAITING_FOR_DEPOSIT"):
            buttons.append(("expire", _("Expire")))
        return buttons

    def actions(self) -> dict[str, Any]:
        return {
            "pay": self.act_authenticate,
            "deposit": self.act_deposit,
            "revert-deposit": self.act_revert_deposit,
            "cancel": self.act_cancel,
            "expire": self.act_expire,
            "state": self.act_payment,
        }

    def act_authenticate(
        self,
        order_id: str,
        amount: int,
        order_name: str = "Sandbox order",
        method: str = "CARD",
        deposit_after: float | None = None,
        origin: str = "",
        **session: Any,
    ) -> dict[str, Any]:
        """A buyer opens the window and pays, without a browser: returns the success redirect's parameters."""
        amount = parse_krw(amount)
        if amount is None or amount < 1:
            raise ApiError("INVALID_REQUEST", "amount must be a positive whole number of won")
        if method not in METHODS:
            raise ApiError("INVALID_REQUEST", f"method must be one of {sorted(METHODS)}")
        if not isinstance(order_id, str) or not ORDER_ID_RE.match(order_id):
            raise ApiError("INVALID_REQUEST", "orderId must be 6-64 of A-Z, a-z, 0-9, '-' and '_'")
        now = clock.now()
        with transaction.atomic():
            payment = self.create_payment(
                order_id=order_id,
                amount=amount,
                order_name=order_name,
                method=method,
                origin=(origin or _site()).rstrip("/"),
                now=now,
                session={"openedAt": now.isoformat(), **{k: v for k, v in session.items() if isinstance(v, (str, int, float))}},
            )
            self._authenticate(payment, method, now, deposit_after=deposit_after)
        return {"paymentKey": payment.key, "orderId": payment.order_id, "amount": amount}

    def _act(self, payment_key: str, change) -> dict[str, Any]:
        now = clock.now()
        with transaction.atomic():
            payment = self._locked(payment_key)
            if payment is None:
                raise ApiError("NOT_FOUND_PAYMENT")
            self.refresh(payment, now)
            change(payment, now)
        return self.render(payment)

    def act_deposit(self, payment_key: str) -> dict[str, Any]:
        """The money for a virtual account arrives (PAYMENT_STATUS_CHANGED + DEPOSIT_CALLBACK)."""

        def change(payment, now):
            if payment.state["status"] != "WAITING_FOR_DEPOSIT":
                raise ApiError("NOT_CANCELABLE_PAYMENT", f"status is {payment.state['status']}, not WAITING_FOR_DEPOSIT")
            self._deposit(payment, now)

        return self._act(payment_key, change)

    def act_revert_deposit(self, payment_key: str) -> dict[str, Any]:
        """Toss's rare reversal of a virtual-account deposit: DONE -> WAITING_FOR_DEPOSIT."""

        def change(payment, now):
            if payment.state["status"] != "DONE" or not self._is_virtual_account(payment):
                raise ApiError("INVALID_REQUEST", "only a deposited virtual-account payment can revert")
            payment.state["approvedAt"] = None
            payment.state["lastTransactionKey"] = _transaction_key()
            self._save(payment, "WAITING_FOR_DEPOSIT")
            self._emit(payment, now, deposit=True)

        return self._act(payment_key, change)

    def act_cancel(self, payment_key: str, amount: int | None = None, reason: str = "샌드박스 관리자 취소") -> dict[str, Any]:
        """A cancel made at the PG (its dashboard or staff), not asked for by the shop (``amount`` None: all of it)."""
        given = amount
        amount = parse_krw(amount) if amount not in (None, "") else None
        if given not in (None, "") and (amount is None or amount < 1):
            # An amount that cannot be read is refused, never taken for "everything".
            raise ApiError("INVALID_REQUEST", "amount must be a positive whole number of won")

        def change(payment, now):
            self._cancel(payment, now, amount=amount, reason=reason, by_pg=True)

        return self._act(payment_key, change)

    def act_expire(self, payment_key: str) -> dict[str, Any]:
        """Toss gives up on a payment that was never approved (window, confirm window or deposit deadline)."""

        def change(payment, now):
            if payment.state["status"] not in ("READY", "IN_PROGRESS", "WAITING_FOR_DEPOSIT"):
                raise ApiError("INVALID_REQUEST", f"a {payment.state['status']} payment does not expire")
            if payment.state.get("virtualAccount"):
                payment.state["virtualAccount"]["expired"] = True
            was_ready = payment.state["status"] == "READY"
            self._save(payment, "EXPIRED")
            if not was_ready:
                self._emit(payment, now)

        return self._act(payment_key, change)

    def act_payment(self, payment_key: str) -> dict[str, Any]:
        """The Payment object, as ``GET /v1/payments/{paymentKey}`` would return it."""
        return self._act(payment_key, lambda payment, now: None)

    def apply_due_to(self, key: str, now: datetime) -> bool:
        payment = self._locked(key)
        return payment is not None and self.refresh(payment, now)


#: Choices of the window's "deposit arrives" select for virtual accounts: (seconds, label).
def _checkout_problems(params: dict[str, Any], method: Any, amount: dict[str, Any], value: int | None) -> list[str]:
    """What is wrong with ``requestPayment``'s parameters (nothing: an empty list)."""
    order_id, order_name = params.get("orderId"), params.get("orderName")
    problems = []
    if method is not None and method not in METHODS:
        problems.append(f"method {method!r} is not emulated (one of {', '.join(METHODS)}).")
    if amount.get("currency", "KRW") != "KRW":
        problems.append("Only KRW is emulated.")
    if value is None or value < 1:
        problems.append("amount.value must be a positive whole number of won.")
    if not isinstance(order_id, str) or not ORDER_ID_RE.match(order_id):
        problems.append("orderId must be 6-64 of A-Z, a-z, 0-9, '-' and '_'.")
    if not isinstance(order_name, str) or not order_name.strip() or len(order_name) > 100:
        problems.append("orderName is required (at most 100 characters).")
    for name in ("successUrl", "failUrl"):
        if not _is_http_url(params.get(name)):
            problems.append(f"{name} must be an absolute http(s) URL.")
    return problems


def _get(data: Any, name: str) -> Any:
    return data.get(name) if isinstance(data, dict) else None


def _msg(ctx: ApiContext, ko: str, en: str) -> str:
    return en if ctx.lang == "en" else ko


def _site() -> str:
    from .conf import site_url

    return site_url()


def _redirect_fail(request: HttpRequest, fail_url: str, code: str, order_id: str) -> HttpResponse:
    """``failUrl?code=…&message=…&orderId=…`` as Toss's window sends it."""
    message = WINDOW_ERRORS[code][0]
    return HttpResponseRedirect(_with_query(fail_url, {"code": code, "message": message, "orderId": order_id}))


# --- the Python API (what tests call) -------------------------------------------


def _toss() -> TossSandbox:
    from .base import emulator

    return emulator("toss")


def authenticate(order_id: str, amount: int, **kwargs) -> dict[str, Any]:
    """A buyer pays in the window (no browser): ``{"paymentKey", "orderId", "amount"}`` for the confirm call."""
    return _toss().act_authenticate(order_id, amount, **kwargs)


def deposit(payment_key: str) -> dict[str, Any]:
    """The money for a virtual account arrives."""
    return _toss().act_deposit(payment_key)


def revert_deposit(payment_key: str) -> dict[str, Any]:
    """A deposit is reverted: DONE -> WAITING_FOR_DEPOSIT."""
    return _toss().act_revert_deposit(payment_key)


def cancel_at_pg(payment_key: str, amount: int | None = None, reason: str = "샌드박스 관리자 취소") -> dict[str, Any]:
    """A cancel the shop did not ask for (Toss's dashboard)."""
    return _toss().act_cancel(payment_key, amount, reason)


def expire(payment_key: str) -> dict[str, Any]:
    """Toss gives up on a payment that was never approved."""
    return _toss().act_expire(payment_key)


def payment_state(payment_key: str) -> dict[str, Any]:
    """The Payment object of ``payment_key``."""
    return _toss().act_payment(payment_key)
