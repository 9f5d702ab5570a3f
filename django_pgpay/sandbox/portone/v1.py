"""PortOne V1 (iamport), emulated: the REST API, ``iamport.js`` and its window, the console (see :mod:`..portone`)."""

from __future__ import annotations

import copy
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.core import checks
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, re_path, reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from ...gateways import standard_webhooks
from .. import clock, faults, lifecycle, tokens, webhooks
from ..base import Answer, ApiContext, ApiError, Problem, dumps, framed, guard
from ..lifecycle import Ledger, RefundFields, Refusal, Stage
from ..models import SandboxPayment
from ..window import Choice
from ..wire import with_query
from . import console
from .common import (
    _DIGITS,
    KST,
    _format,
    _mask,
    _PortOneCommon,
    _random,
    _same,
    _site,
    _text,
    money,
    number,
    parse_vbank_due,
    stored,
    truthy,
    unix,
    wire,
)
from .prepare import MERCHANT_UID_MAX, PrepareTable

#: V1 errors: name -> (HTTP status, envelope ``code``, message). PortOne names
#: errors in words; the codes and HTTP statuses of business errors are
#: unconfirmed (observed: HTTP 200, code 1), and so are the wordings not quoted
#: in portone.md (prepare, checksum, amount, refund account).
V1_ERRORS: dict[str, tuple[int, int, str]] = {
    "UNAUTHORIZED": (401, -1, "Unauthorized"),
    "TOKEN_REFUSED": (401, -1, "imp_key, imp_secret 인증에 실패하였습니다."),
    "INVALID_REQUEST": (400, -1, "요청 파라미터가 올바르지 않습니다."),
    "NOT_FOUND": (404, -1, "존재하지 않는 결제정보입니다."),
    "PREPARE_NOT_FOUND": (404, -1, "사전등록된 결제정보가 없습니다."),
    "PATH_NOT_FOUND": (404, -1, "존재하지 않는 API 경로입니다."),
    "METHOD_NOT_ALLOWED": (405, -1, "허용되지 않은 HTTP 메서드입니다."),
    "PREPARE_REGISTERED": (200, 1, "이미 사전등록된 merchant_uid입니다."),
    "ALREADY_CANCELLED": (200, 1, "이미 전액취소된 주문입니다."),
    "CANCEL_NOT_FOUND": (200, 1, "취소할 결제건이 존재하지 않습니다."),
    "CHECKSUM_MISMATCH": (200, 1, "[checksum] 취소가능 잔액이 일치하지 않습니다."),
    "EXCEEDS_BALANCE": (200, 1, "취소가능 금액을 초과하였습니다."),
    "CANCEL_INVALID": (200, 1, "취소 요청 파라미터가 올바르지 않습니다."),
    "NOT_PAID": (200, 1, "결제완료 상태가 아닌 결제건은 취소할 수 없습니다."),
    "REFUND_ACCOUNT_REQUIRED": (200, 1, "가상계좌 환불에는 환불계좌 정보(refund_holder, refund_bank, refund_account)가 필요합니다."),
    # DELETE /vbanks/{imp_uid} of a payment that is not an account waiting for its deposit (V1 spec: 400).
    "VBANK_NOT_READY": (400, 1, "입금대기 상태의 가상계좌 결제건이 아닙니다."),
    "FAILED_INTERNAL_SYSTEM_PROCESSING": (500, -1, "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요."),
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": (500, -1, "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요."),
}

#: The pipeline's problems in V1's words.
V1_PROBLEMS = {
    Problem.MALFORMED_BODY: "INVALID_REQUEST",
    Problem.INTERNAL: "FAILED_INTERNAL_SYSTEM_PROCESSING",
    Problem.INTERNAL_AFTER_COMMIT: "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
}
#: The lifecycle's refusals in V1's words.
V1_REFUSALS = {
    Refusal.ALREADY_CANCELED: "ALREADY_CANCELLED",
    Refusal.NOT_CANCELABLE: "NOT_PAID",
    Refusal.BALANCE_MISMATCH: "CHECKSUM_MISMATCH",
    Refusal.INVALID_AMOUNT: "CANCEL_INVALID",
    Refusal.OVER_BALANCE: "EXCEEDS_BALANCE",
    Refusal.PARTIAL_UNPAID_ACCOUNT: "NOT_PAID",
    Refusal.PARTIAL_NOT_ALLOWED: "CANCEL_INVALID",
    Refusal.REFUND_ACCOUNT_REQUIRED: "REFUND_ACCOUNT_REQUIRED",
    Refusal.REFUND_ACCOUNT_INVALID: "REFUND_ACCOUNT_REQUIRED",
}
#: V1's flat refund fields of ``POST /payments/cancel`` (PortOne checks only that they are given).
V1_REFUND_FIELDS = RefundFields(bank="refund_bank", number="refund_account", holder="refund_holder", phone="refund_tel", digits_only=False)

#: What the window answers ``IMP.request_pay`` on failure: (error_code, error_msg).
#: PortOne has no code system for these ("현재 코드체계는 없음"); the codes are the sandbox's.
V1_WINDOW_ERRORS: dict[str, tuple[str, str]] = {
    "closed": ("F400", "사용자가 결제를 취소하셨습니다"),
    "declined": ("F1002", "[결제실패] 카드사 승인 거절 (한도초과)"),
    "amount_mismatch": ("F0005", "[결제검증] 사전등록된 결제정보와 요청된 결제금액이 일치하지 않습니다."),
    "currency_mismatch": ("F0005", "[결제검증] 사전등록된 결제정보와 요청된 통화가 일치하지 않습니다."),
    "already_paid": ("F0004", "이미 결제가 완료된 주문번호(merchant_uid)입니다."),
    "invalid": ("F0001", "결제 요청 파라미터가 올바르지 않습니다."),
    "merchant_code": ("F0002", "등록되지 않은 가맹점 식별코드입니다."),
    # The sandbox's wording: an account asked for with a vbank_due already past.
    "vbank_due": ("F0001", "가상계좌 입금기한(vbank_due)이 이미 지났습니다."),
}

#: V1 ``pay_method`` values the window emulates, with their labels.
V1_METHODS: dict[str, str] = {
    "card": "신용카드",
    "trans": "실시간계좌이체",
    "vbank": "가상계좌",
    "phone": "휴대폰소액결제",
    "kakaopay": "카카오페이",
    "naverpay": "네이버페이",
    "tosspay": "토스페이",
    "payco": "페이코",
}
#: Sorting of ``payments/find``: name -> (state field, newest first).
V1_SORTING = {
    "-started": ("started_at", True),
    "started": ("started_at", False),
    "-paid": ("paid_at", True),
    "paid": ("paid_at", False),
    "-updated": ("_updated", True),
    "updated": ("_updated", False),
}
V1_STATUSES = ("ready", "paid", "cancelled", "failed")


class PortOneSandbox(PrepareTable, _PortOneCommon):
    """PortOne V1 (iamport): REST API, ``iamport.js`` and its payment window (see the module docstring).

    Settings, ``PGPAY_SANDBOX["PORTONE"]``: ``IMP_KEYS`` and ``IMP_SECRETS``
    (made-up ``test_`` keys, paired by position), ``MERCHANT_CODES`` (the
    ``imp…`` codes ``IMP.init`` accepts), ``WEBHOOK_URL`` (the console's
    webhook URL, for payments without ``notice_url``), and optionally
    ``WEBHOOK_CONTENT_TYPE`` (``"application/json"`` or
    ``"application/x-www-form-urlencoded"``), ``WEBHOOK_RETRIES`` (0: PortOne
    delivers once unless asked for up to 5 retries a minute apart),
    ``TEST_CHANNEL`` (True: payments carry ``sandbox: true``), ``TOKEN_LIFETIME``
    (1800 s), ``PREPARE_AGAIN`` (``"error"`` or ``"overwrite"``), ``PG_PROVIDER``
    (``"html5_inicis"``), ``PG_ID`` (``"INIpayTest"``), ``VBANK_HOURS`` (168),
    ``VBANK_HOLDER``.
    """

    name = "portone"
    title = "PortOne V1 (iamport)"
    problem_codes = V1_PROBLEMS
    refusals = V1_REFUSALS
    #: Older action names (base.ACTION_NAMES gives the uniform ones).
    action_aliases = {"revoke-tokens": "expire-tokens", "payment": "state"}

    # --- settings ---------------------------------------------------------------------

    def webhook_schedule(self) -> list[float]:
        from .. import conf

        schedule = conf.webhook_option("RETRY_SCHEDULE")
        if schedule is None:
            retries = min(max(int(self.config().get("WEBHOOK_RETRIES", 0) or 0), 0), 5)
            schedule = [60.0] * retries  # portone.md §7: up to 5 retries, 1 min apart, on request
        scale = float(conf.webhook_option("TIME_SCALE"))
        return [float(s) * scale for s in schedule]

    def check_config(self, value: dict[str, Any]) -> list:
        where = 'PGPAY_SANDBOX["PORTONE"]'
        messages = []
        keys, secrets_ = value.get("IMP_KEYS") or [], value.get("IMP_SECRETS") or []
        if isinstance(keys, (list, tuple)) and isinstance(secrets_, (list, tuple)) and len(keys) != len(secrets_):
            messages.append(
                checks.Error(f'{where}["IMP_KEYS"] and ["IMP_SECRETS"] must be pairs (lists of the same length).', id="pgpay_sandbox.E002")
            )
        codes = value.get("MERCHANT_CODES", [])
        if isinstance(codes, str) or not isinstance(codes, (list, tuple)):
            messages.append(checks.Error(f'{where}["MERCHANT_CODES"] must be a list of imp… codes.', id="pgpay_sandbox.E002"))
        secret = value.get("V2_WEBHOOK_SECRET")
        if secret:
            try:
                standard_webhooks.decode_secret(secret)
            except ValueError:
                messages.append(checks.Error(f'{where}["V2_WEBHOOK_SECRET"] is not a whsec_… base64 secret.', id="pgpay_sandbox.E002"))
        content_type = value.get("WEBHOOK_CONTENT_TYPE", "application/json")
        if content_type not in ("application/json", "application/x-www-form-urlencoded"):
            messages.append(
                checks.Error(
                    f'{where}["WEBHOOK_CONTENT_TYPE"] must be "application/json" or "application/x-www-form-urlencoded".',
                    id="pgpay_sandbox.E002",
                )
            )
        return messages

    def dashboard_context(self, base: str) -> dict[str, Any]:
        from django.utils.translation import gettext

        codes = self._list("MERCHANT_CODES")
        return {
            "sdk_url": base + "/v1/iamport.js",
            "client_keys": codes,
            "secret_keys": [_mask(k) for k in self._list("IMP_KEYS")],
            "console_url": base + "/console/",
            "console_title": gettext("PortOne console: payments, deposits, cancels, tokens"),
            "snippet_title": gettext("Point a PortOne V1 gateway at the sandbox:"),
            "snippet": (
                '"portone": {\n'
                '    "CLASS": "django_pgpay.gateways.portone.PortOneV1Gateway",\n'
                '    "OPTIONS": {\n'
                '        "IMP_KEY": os.environ["PORTONE_IMP_KEY"],        # one of PGPAY_SANDBOX["PORTONE"]["IMP_KEYS"]\n'
                '        "IMP_SECRET": os.environ["PORTONE_IMP_SECRET"],  # its pair in ["IMP_SECRETS"]\n'
                f'        "MERCHANT_CODE": "{codes[0] if codes else "imp00000000"}",\n'
                '        "CHANNEL_KEY": "channel-key-sandbox",\n'
                '        "INCLUDE_SANDBOX": True,   # sandbox payments are test-channel payments\n'
                f'        "API_BASE": "{base}",\n'
                f'        "JS_SDK_URL": "{base}/v1/iamport.js",\n'
                "    },\n"
                "},"
            ),
        }

    # --- protocol ---------------------------------------------------------------------

    def authenticate(self, ctx: ApiContext) -> str:
        if getattr(ctx.request, "pgpay_no_token", False):
            return ""
        header = ctx.request.headers.get("Authorization", "") or ctx.request.headers.get("X-ImpTokenHeader", "")
        token = header.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise ApiError("UNAUTHORIZED")
        row = tokens.find(self.name, token)
        if row is None or row.expires_at <= ctx.now:
            raise ApiError("UNAUTHORIZED")
        return "token:" + row.subject

    def error_answer(self, ctx: ApiContext, error: ApiError) -> Answer:
        status, code, message = V1_ERRORS.get(error.code, (400, -1, error.code))
        return Answer.json(error.status or status, {"code": code, "message": error.message or message, "response": None})

    def malformed_body(self) -> str:
        return "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"

    def ok(self, response: Any) -> Answer:
        return Answer.json(200, {"code": 0, "message": None, "response": response})

    # --- the Payment object -------------------------------------------------------------

    def render(self, payment: SandboxPayment) -> dict[str, Any]:
        """The Payment object as the API returns it (amounts as JSON numbers)."""
        state = copy.deepcopy(payment.state)
        state.pop("_updated", None)
        for name in ("amount", "cancel_amount"):
            state[name] = wire(money(state[name]))
        for entry in state.get("cancel_history") or ():
            entry["amount"] = wire(money(entry["amount"]))
        return state

    def ledger(self, payment: SandboxPayment) -> Ledger:
        """The payment's money in the lifecycle's terms (an unpaid vbank is "ready": not cancellable here)."""
        state = payment.state
        stage = {"paid": Stage.PAID, "cancelled": Stage.CANCELED}.get(state["status"], Stage.PENDING)
        return Ledger(
            amount=money(state["amount"]),
            canceled=money(state["cancel_amount"]),
            stage=stage,
            virtual_account=state.get("pay_method") == "vbank",
            fractional=state.get("currency") != "KRW",
        )

    def describe(self, payment: SandboxPayment) -> dict[str, Any]:
        state = payment.state
        if "cancel_amount" not in state:
            return super().describe(payment)
        return {"amount": state.get("amount"), "balance": wire(self.balance(payment)), "method": state.get("pay_method")}

    def balance(self, payment: SandboxPayment) -> Decimal:
        return money(payment.state["amount"]) - money(payment.state["cancel_amount"])

    def _new_imp_uid(self) -> str:
        while True:
            imp_uid = "imp_" + _random(12, _DIGITS)
            if not SandboxPayment.objects.filter(pg=self.name, key=imp_uid).exists():
                return imp_uid

    def create_payment(self, params: dict[str, Any], *, now: datetime, origin: str, session: dict[str, Any]) -> SandboxPayment:
        """A ``ready`` payment, as ``IMP.request_pay`` makes it when the window opens."""
        provider, pg_id = self._provider(params)
        pay_method = params.get("pay_method") if params.get("pay_method") in V1_METHODS else "card"
        custom = params.get("custom_data")
        imp_uid = self._new_imp_uid()
        state = {
            "amount": stored(params["_amount"]),
            "apply_num": None,
            "bank_code": None,
            "bank_name": None,
            "buyer_addr": _text(params.get("buyer_addr"), 200),
            "buyer_email": _text(params.get("buyer_email"), 200),
            "buyer_name": _text(params.get("buyer_name"), 100),
            "buyer_postcode": _text(params.get("buyer_postcode"), 20),
            "buyer_tel": _text(params.get("buyer_tel"), 40),
            "cancel_amount": 0,
            "cancel_history": [],
            "cancel_reason": None,
            "cancel_receipt_urls": [],
            "cancelled_at": 0,
            "card_code": None,
            "card_name": None,
            "card_number": None,
            "card_quota": 0,
            "card_type": None,
            "cash_receipt_issued": False,
            "channel": "mobile" if session.get("mode") == "redirect" else "pc",
            "currency": params["_currency"],
            "custom_data": None if custom is None else (custom if isinstance(custom, str) else dumps(custom)),
            "customer_uid": None,
            "customer_uid_usage": None,
            "emb_pg_provider": None,
            "escrow": False,
            "fail_reason": None,
            "failed_at": 0,
            "imp_uid": imp_uid,
            "merchant_uid": params["merchant_uid"],
            "name": _text(params.get("name"), 200),
            "paid_at": 0,
            "pay_method": pay_method,
            "pg_id": pg_id,
            "pg_provider": provider,
            "pg_tid": None,
            "receipt_url": None,
            "sandbox": self.sandbox_payments if session.get("sandbox") is None else bool(session["sandbox"]),
            "started_at": unix(now),
            "status": "ready",
            "user_agent": _text(session.get("userAgent") or "sandbox", 300),
            "vbank_code": None,
            "vbank_date": 0,
            "vbank_holder": None,
            "vbank_issued_at": 0,
            "vbank_name": None,
            "vbank_num": None,
            "_updated": unix(now),
        }
        session = {**session, "origin": origin, "window": True, "window_token": secrets.token_urlsafe(16)}
        return SandboxPayment.objects.create(
            pg=self.name, key=imp_uid, order_id=params["merchant_uid"], status="ready", state=state, session=session
        )

    def _provider(self, params: dict[str, Any]) -> tuple[str, str]:
        legacy = params.get("pg")
        if isinstance(legacy, str) and legacy and not params.get("channelKey"):
            provider, _, mid = legacy.partition(".")
            return provider[:16], (mid or str(self.config().get("PG_ID") or "INIpayTest"))[:80]
        return str(self.config().get("PG_PROVIDER") or "html5_inicis")[:16], str(self.config().get("PG_ID") or "INIpayTest")[:80]

    def _save(self, payment: SandboxPayment, now: datetime, status: str | None = None) -> None:
        if status is not None:
            payment.state["status"] = status
        payment.state["_updated"] = unix(now)
        payment.status = payment.state["status"]
        deposit_at = payment.session.get("depositAt")
        payment.due_at = parse_datetime(deposit_at) if deposit_at and payment.status == "ready" else None
        payment.save(update_fields=["state", "session", "status", "due_at", "updated_at"])

    def _notify(self, payment: SandboxPayment, now: datetime, status: str, cancellation_id: str | None = None) -> None:
        """Queue the webhook of a change (inside the change's transaction)."""
        origin = payment.session.get("origin", "")
        urls = [self._resolve(u, origin) for u in payment.session.get("notice_urls") or () if u]
        if not urls:
            url = self.webhook_url(origin)
            urls = [url] if url else []
        body: dict[str, Any] = {"imp_uid": payment.key, "merchant_uid": payment.order_id, "status": status}
        if cancellation_id:
            body["cancellation_id"] = cancellation_id
        content_type = str(self.config().get("WEBHOOK_CONTENT_TYPE") or "application/json")
        text = urlencode(body) if content_type == "application/x-www-form-urlencoded" else dumps(body)
        for url in urls:
            webhooks.enqueue(self.name, status, text, url=url, payment_key=payment.key, headers={"Content-Type": content_type}, now=now)

    # --- state changes (inside the caller's transaction) -----------------------------------

    def _pg_tid(self, payment: SandboxPayment, now: datetime) -> str:
        kind = {"card": "CARD", "trans": "ACCT", "vbank": "VBNK", "phone": "HPP_"}.get(payment.state["pay_method"], "EASY")
        return f"Stdpay{kind}{payment.state['pg_id']}{now.astimezone(KST).strftime('%Y%m%d%H%M%S')}{_random(6, _DIGITS)}"[:64]

    def _pay(self, payment: SandboxPayment, now: datetime, method: str) -> None:
        """The buyer finished the window: ``paid``, or a virtual account issued (``ready``)."""
        state = payment.state
        state["pay_method"] = method
        state["pg_tid"] = self._pg_tid(payment, now)
        state["receipt_url"] = payment.session.get("origin", _site()) + reverse("pgpay_sandbox:portone-receipt", args=[payment.key])
        payment.session["window"] = False
        if method == "vbank":
            asked = parse_datetime(payment.session.get("vbankDue") or "")
            due = asked or now + timedelta(hours=float(self.config().get("VBANK_HOURS", 168)))
            state.update(
                vbank_code="004",
                vbank_name="KB국민은행",
                vbank_num="T" + _random(13, _DIGITS),
                vbank_holder=str(self.config().get("VBANK_HOLDER") or "（주）샌드박스상점"),
                vbank_date=unix(due),
                vbank_issued_at=unix(now),
            )
            # The bank takes no transfer after it (lifecycle.deposit_has_come, act_deposit).
            payment.session["dueDate"] = due.isoformat()
            lifecycle.start_deposit_clock(payment.session, now)
            self._save(payment, now, "ready")
            self._notify(payment, now, "ready")
            return
        if method == "card":
            state.update(
                apply_num=_random(8, _DIGITS),
                card_code="361",
                card_name="BC카드",
                card_number="910020*********5",
                card_quota=0,
                card_type=0,
            )
        elif method == "trans":
            state.update(bank_code="004", bank_name="KB국민은행")
        state["paid_at"] = unix(now)
        self._save(payment, now, "paid")
        self._notify(payment, now, "paid")

    def _fail(self, payment: SandboxPayment, now: datetime, reason: str) -> None:
        """The window ended without a payment: ``failed`` (PortOne sends no webhook for failures)."""
        payment.state.update(fail_reason=reason, failed_at=unix(now))
        payment.session["window"] = False
        self._save(payment, now, "failed")

    def _deposit(self, payment: SandboxPayment, now: datetime) -> None:
        payment.state["paid_at"] = unix(now)
        lifecycle.clear_deposit(payment.session)
        self._save(payment, now, "paid")
        self._notify(payment, now, "paid")

    def _cancel(
        self,
        payment: SandboxPayment,
        now: datetime,
        *,
        amount: Decimal | None,
        reason: str,
        checksum: Decimal | None = None,
        refund: dict[str, Any] | None = None,
        console: bool = False,
        webhook: bool = False,
    ) -> dict[str, Any]:
        """Give back ``amount`` (None: the balance); raises ApiError when PortOne refuses. Returns the cancel entry."""
        state = payment.state
        # The checksum is checked before the amount (PortOne's spec: on a mismatch nothing runs).
        plan = self.plan_cancel(
            self.ledger(payment),
            None if amount is None or amount == 0 else amount,
            expected_balance=checksum,
            refund_account=refund,
            refund_fields=V1_REFUND_FIELDS,
            by_pg=console,
        )
        amount, left = plan.amount, plan.left
        origin = payment.session.get("origin", _site())
        cancellation_id = "cancel_" + _random(20)
        entry = {
            "pg_tid": state["pg_tid"],
            "amount": stored(amount),
            "cancelled_at": unix(now),
            "reason": reason,
            "cancellation_id": cancellation_id,
            "receipt_url": origin + reverse("pgpay_sandbox:portone-receipt", args=[payment.key]) + f"?cancel={cancellation_id}",
        }
        state["cancel_history"] = [*(state.get("cancel_history") or []), entry]
        state["cancel_receipt_urls"] = [*(state.get("cancel_receipt_urls") or []), entry["receipt_url"]]
        state["cancel_amount"] = stored(money(state["cancel_amount"]) + amount)
        state["cancel_reason"] = reason
        state["cancelled_at"] = entry["cancelled_at"]
        # portone.md §4: a partial cancel stays "paid" with cancel_amount > 0 (unconfirmed, widely observed).
        self._save(payment, now, "cancelled" if left == 0 else "paid")
        if console or webhook:
            self._notify(payment, now, "cancelled", cancellation_id)
        return entry

    # --- tokens and the prepare table -----------------------------------------------------------

    def _pair(self, imp_key: Any, imp_secret: Any) -> bool:
        if not isinstance(imp_key, str) or not isinstance(imp_secret, str) or not imp_key or not imp_secret:
            return False
        found = False
        for key, secret in zip(self._list("IMP_KEYS"), self._list("IMP_SECRETS")):
            found |= _same(imp_key, key) & _same(imp_secret, secret)
        return found

    def api_token(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        data = ctx.data if isinstance(ctx.data, dict) else {}
        imp_key, imp_secret = data.get("imp_key"), data.get("imp_secret")
        if not self._pair(imp_key, imp_secret):
            raise ApiError("TOKEN_REFUSED")
        lifetime = self._seconds("TOKEN_LIFETIME", 1800)
        row = tokens.latest(self.name, tokens.subject_of(imp_key), ctx.now)
        if row is None:
            row = tokens.issue(self.name, tokens.subject_of(imp_key), ctx.now, lifetime)
        elif row.expires_at - ctx.now < timedelta(seconds=60):
            # portone.md §1: less than a minute left -> the same token, 5 minutes longer.
            row.expires_at += timedelta(seconds=300)
        row.requests += 1
        row.save(update_fields=["expires_at", "requests"])
        return self.ok({"access_token": tokens.reveal(row), "now": unix(ctx.now), "expired_at": unix(row.expires_at)})

    # --- lookups ---------------------------------------------------------------------------------

    def _visible(self, payment: SandboxPayment, ctx: ApiContext) -> bool:
        return not payment.state.get("sandbox") or truthy(ctx.request.GET.get("include_sandbox"))

    def api_payment(self, ctx: ApiContext, fault: faults.Fault | None = None, imp_uid: str = "") -> Answer:
        payment = self._locked(imp_uid)
        if payment is None or not self._visible(payment, ctx):
            raise ApiError("NOT_FOUND")
        return self.ok(self.render(payment))

    def _attempts(self, ctx: ApiContext, merchant_uid: str, status: str | None) -> list[SandboxPayment]:
        if status is not None and status not in V1_STATUSES:
            raise ApiError("INVALID_REQUEST", f"payment_status는 {', '.join(V1_STATUSES)} 중 하나여야 합니다.")
        sorting = ctx.request.GET.get("sorting") or "-started"
        if sorting not in V1_SORTING:
            raise ApiError("INVALID_REQUEST", f"sorting은 {', '.join(V1_SORTING)} 중 하나여야 합니다.")
        field, newest = V1_SORTING[sorting]
        rows = [p for p in SandboxPayment.objects.filter(pg=self.name, order_id=merchant_uid) if self._visible(p, ctx)]
        if status is not None:
            rows = [p for p in rows if p.state["status"] == status]
        rows.sort(key=lambda p: (int(p.state.get(field) or 0), p.pk), reverse=newest)
        return rows

    def api_find(self, ctx: ApiContext, fault: faults.Fault | None = None, merchant_uid: str = "", status: str | None = None) -> Answer:
        rows = self._attempts(ctx, merchant_uid, status)
        if not rows:
            raise ApiError("NOT_FOUND")
        return self.ok(self.render(rows[0]))

    def api_find_all(self, ctx: ApiContext, fault: faults.Fault | None = None, merchant_uid: str = "", status: str | None = None) -> Answer:
        rows = self._attempts(ctx, merchant_uid, status)
        if not rows:
            raise ApiError("NOT_FOUND")
        try:
            page = max(int(ctx.request.GET.get("page") or 1), 1)
            limit = min(max(int(ctx.request.GET.get("limit") or 20), 1), 100)
        except ValueError as exc:
            raise ApiError("INVALID_REQUEST") from exc
        chunk = rows[(page - 1) * limit : page * limit]
        return self.ok(
            {
                "total": len(rows),
                "previous": page - 1 if page > 1 else 0,
                "next": page + 1 if page * limit < len(rows) else 0,
                "list": [self.render(p) for p in chunk],
            }
        )

    # --- virtual account revoke ----------------------------------------------------------------------

    def api_revoke_vbank(self, ctx: ApiContext, fault: faults.Fault | None = None, imp_uid: str = "") -> Answer:
        """``DELETE /vbanks/{imp_uid}`` (가상계좌 발급취소, V1 spec): closes an account before any deposit.

        400 when the payment is not a virtual account waiting for its deposit
        (spec); the payment becomes ``cancelled`` with nothing cancelled of
        its amount (unconfirmed: PortOne's documented response is the Payment).
        """
        payment = self._locked(imp_uid)
        if payment is None:
            raise ApiError("NOT_FOUND")
        state = payment.state
        if state.get("pay_method") != "vbank" or not state.get("vbank_num") or state["status"] != "ready":
            raise ApiError("VBANK_NOT_READY")
        state["cancelled_at"] = unix(ctx.now)
        state["cancel_reason"] = "가상계좌 발급취소"
        lifecycle.clear_deposit(payment.session)
        self._save(payment, ctx.now, "cancelled")
        return self.ok(self.render(payment))

    # --- cancel ------------------------------------------------------------------------------------

    def api_cancel(self, ctx: ApiContext, fault: faults.Fault | None = None) -> Answer:
        data = ctx.data if isinstance(ctx.data, dict) else None
        if data is None:
            raise ApiError("CANCEL_INVALID")
        imp_uid, merchant_uid = data.get("imp_uid"), data.get("merchant_uid")
        if imp_uid:
            # portone.md §5: imp_uid wins; an unknown imp_uid fails even with a valid merchant_uid.
            payment = self._locked(str(imp_uid))
        elif merchant_uid:
            found = (
                SandboxPayment.objects.filter(pg=self.name, order_id=str(merchant_uid), status__in=("paid", "cancelled"))
                .order_by("-id")
                .values_list("key", flat=True)
                .first()
            )
            payment = self._locked(found) if found else None
        else:
            raise ApiError("CANCEL_INVALID", "imp_uid 또는 merchant_uid 중 하나는 필수입니다.")
        if payment is None:
            raise ApiError("CANCEL_NOT_FOUND")
        amount = checksum = None
        if data.get("amount") not in (None, ""):
            amount = number(data["amount"])
            if amount is None:
                raise ApiError("CANCEL_INVALID", "amount가 올바르지 않습니다.")
        if data.get("checksum") not in (None, ""):
            checksum = number(data["checksum"])
            if checksum is None:
                raise ApiError("CANCEL_INVALID", "checksum이 올바르지 않습니다.")
        reason = str(data.get("reason") or "")[:255]
        self._cancel(
            payment,
            ctx.now,
            amount=amount,
            reason=reason,
            checksum=checksum,
            refund={k: data.get(k) for k in ("refund_holder", "refund_bank", "refund_account", "refund_tel")},
            webhook=truthy(data.get("enable_webhook")),
        )
        return self.ok(self.render(payment))

    # --- views: the REST API ------------------------------------------------------------------------

    def _match(self, *keys: Any) -> list[str]:
        found = [k for k in keys if isinstance(k, str) and k]
        for key in list(found):
            merchant_uid = SandboxPayment.objects.filter(pg=self.name, key=key).values_list("order_id", flat=True).first()
            if merchant_uid:
                found.append(merchant_uid)
        return found

    def _refuse(self, request: HttpRequest, code: str) -> HttpResponse:
        guard()
        return self.error_answer(ApiContext(request=request, now=clock.now()), ApiError(code)).response()

    def view_token(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        request.pgpay_no_token = True
        return self.serve(request, "token", self.api_token)

    def view_payment(self, request: HttpRequest, imp_uid: str) -> HttpResponse:
        if request.method != "GET":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "lookup", self.api_payment, match=lambda ctx: self._match(imp_uid), imp_uid=imp_uid)

    def view_find(self, request: HttpRequest, merchant_uid: str, status: str | None = None) -> HttpResponse:
        if request.method != "GET":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "lookup", self.api_find, match=lambda ctx: [merchant_uid], merchant_uid=merchant_uid, status=status)

    def view_find_all(self, request: HttpRequest, merchant_uid: str, status: str | None = None) -> HttpResponse:
        if request.method != "GET":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "lookup", self.api_find_all, match=lambda ctx: [merchant_uid], merchant_uid=merchant_uid, status=status)

    def view_cancel(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")

        def match(ctx):
            data = ctx.data if isinstance(ctx.data, dict) else {}
            return self._match(data.get("imp_uid"), data.get("merchant_uid"))

        return self.serve(request, "cancel", self.api_cancel, match=match)

    def view_vbank(self, request: HttpRequest, imp_uid: str) -> HttpResponse:
        if request.method != "DELETE":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "cancel", self.api_revoke_vbank, match=lambda ctx: self._match(imp_uid), imp_uid=imp_uid)

    def view_unknown(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        return self._refuse(request, "PATH_NOT_FOUND")

    # --- views: iamport.js and the window ------------------------------------------------------------

    def view_sdk(self, request: HttpRequest) -> HttpResponse:
        """The stand-in for ``https://cdn.iamport.kr/v1/iamport.js``."""
        return self._view_script(request, "pgpay_sandbox/portone/iamport.js", "pgpay_sandbox:portone-checkout")

    def _v1_failure(self, params: dict[str, Any], reason: str, imp_uid: str | None = None, message: str | None = None) -> dict[str, Any]:
        code, default = V1_WINDOW_ERRORS[reason]
        return {
            "success": False,
            "imp_uid": imp_uid,
            "merchant_uid": params.get("merchant_uid") if isinstance(params.get("merchant_uid"), str) else None,
            "error_code": code,
            "error_msg": message or default,
        }

    def _redirect_url(self, session: dict[str, Any], result: dict[str, Any]) -> str:
        url = session.get("m_redirect_url") or ""
        if not url:
            return ""
        query = {
            "imp_uid": result.get("imp_uid") or "",
            "merchant_uid": result.get("merchant_uid") or "",
            "imp_success": "true" if result["success"] else "false",
        }
        if not result["success"]:
            query.update(error_code=result["error_code"], error_msg=result["error_msg"])
        return with_query(url, query)

    def view_checkout(self, request: HttpRequest) -> HttpResponse:
        """Where ``IMP.request_pay`` posts its parameters: checks them and opens the window (or refuses as PortOne would)."""
        opened = self._checkout_request(request, "m_redirect_url")
        if isinstance(opened, HttpResponse):
            return opened
        payload, params, session = opened
        mode = session["mode"]

        def refuse(reason: str, message: str | None = None) -> HttpResponse:
            result = self._v1_failure(params, reason, message=message)
            return self._finish_window(request, mode, result, self._redirect_url(session, result))

        code = payload.get("merchantCode")
        if not isinstance(code, str) or not any(_same(code, known) for known in self._list("MERCHANT_CODES")):
            return refuse("merchant_code")
        problems = []
        merchant_uid = params.get("merchant_uid")
        amount = number(params.get("amount"))
        currency = str(params.get("currency") or "KRW").upper()
        if not isinstance(merchant_uid, str) or not merchant_uid or len(merchant_uid) > MERCHANT_UID_MAX:
            problems.append(f"merchant_uid: 1-{MERCHANT_UID_MAX} characters")
        if amount is None or amount <= 0 or (currency == "KRW" and amount != amount.to_integral_value()):
            problems.append("amount: a positive number (whole won for KRW)")
        if not params.get("channelKey") and not params.get("pg"):
            problems.append("channelKey (or the legacy pg) is required")
        if mode == "redirect" and not session["m_redirect_url"]:
            problems.append("m_redirect_url: an absolute http(s) URL is needed on a phone")
        vbank_due = parse_vbank_due(params["vbank_due"]) if params.get("vbank_due") not in (None, "") else None
        if params.get("vbank_due") not in (None, "") and vbank_due is None:
            problems.append("vbank_due: YYYYMMDDhhmm (Korean time)")
        if problems:
            return refuse("invalid", "결제 요청 파라미터가 올바르지 않습니다: " + "; ".join(problems))
        now = clock.now()
        origin = f"{request.scheme}://{request.get_host()}"
        with transaction.atomic():
            prepared = self._prepared_row(merchant_uid)
            if prepared is not None:
                allowed = prepared.take_allowance()
                if money(prepared.amount) != amount and not allowed:
                    return refuse("amount_mismatch")
                if prepared.currency and prepared.currency != currency and not allowed:
                    return refuse("currency_mismatch")
            if SandboxPayment.objects.filter(pg=self.name, order_id=merchant_uid, status__in=("paid", "cancelled")).exists():
                return refuse("already_paid")
            notice = params.get("notice_url")
            notice_urls = [u for u in (notice if isinstance(notice, list) else [notice]) if isinstance(u, str) and u][:5]
            payment = self.create_payment(
                {**params, "_amount": amount, "_currency": currency},
                now=now,
                origin=origin,
                session={
                    **session,
                    "merchantCode": code,
                    "channelKey": str(params.get("channelKey") or "")[:100],
                    "pg": str(params.get("pg") or "")[:100],
                    "notice_urls": notice_urls,
                    "requestedMethod": params.get("pay_method") if params.get("pay_method") in V1_METHODS else "card",
                    "vbankDue": vbank_due.isoformat() if vbank_due is not None else "",
                },
            )
        return HttpResponseRedirect(reverse("pgpay_sandbox:portone-pay", args=[payment.key]), status=303)

    def window_context(self, payment: SandboxPayment) -> dict[str, Any]:
        state = payment.state
        amount = money(state["amount"])
        requested = payment.session.get("requestedMethod") or "card"
        return {
            "offers_payment": requested != "vbank",
            "offers_virtual_account": True,
            "order_name": state.get("name") or "",
            "order_id": payment.order_id,
            "payment_key": payment.key,
            "amount_display": _format(amount),
            "currency": state["currency"],
            "method": requested,
            "method_label": V1_METHODS.get(requested, requested),
            "buyer": state.get("buyer_name") or "",
            "merchant": payment.session.get("merchantCode", ""),
            "window_token": payment.session.get("window_token", ""),
            "action_url": reverse("pgpay_sandbox:portone-pay", args=[payment.key]),
            "sandbox_flag": state.get("sandbox"),
        }

    def window_act(self, request: HttpRequest, payment: SandboxPayment, choice: Choice, now: datetime) -> HttpResponse | None:
        if choice.gives_up:
            reason = "declined" if choice.action == "decline" else "closed"
            self._fail(payment, now, V1_WINDOW_ERRORS[reason][1])
            return self.window_finish(request, payment, self._v1_failure({"merchant_uid": payment.order_id}, reason, imp_uid=payment.key))
        if choice.action not in ("pay", "virtual_account"):
            return None
        requested = payment.session.get("requestedMethod") or "card"
        method = "vbank" if choice.action == "virtual_account" else ("card" if requested == "vbank" else requested)
        if method == "vbank" and lifecycle.deadline_passed({"dueDate": payment.session.get("vbankDue")}, now):
            self._fail(payment, now, V1_WINDOW_ERRORS["vbank_due"][1])
            return self.window_finish(
                request, payment, self._v1_failure({"merchant_uid": payment.order_id}, "vbank_due", imp_uid=payment.key)
            )
        if method == "vbank":
            payment.session["depositAfter"] = choice.deposit_after
        self.arm_window_fault(payment, choice)
        self._pay(payment, now, method)
        return self.window_finish(request, payment, self.rsp(payment))

    def rsp(self, payment: SandboxPayment) -> dict[str, Any]:
        """What ``IMP.request_pay``'s callback gets for a completed window."""
        state = self.render(payment)
        return {
            "success": True,
            "imp_uid": payment.key,
            "merchant_uid": payment.order_id,
            "pay_method": state["pay_method"],
            "paid_amount": state["amount"],
            "status": state["status"],
            "name": state["name"],
            "pg_provider": state["pg_provider"],
            "pg_tid": state["pg_tid"],
            "buyer_name": state["buyer_name"],
            "buyer_email": state["buyer_email"],
            "buyer_tel": state["buyer_tel"],
            "buyer_addr": state["buyer_addr"],
            "buyer_postcode": state["buyer_postcode"],
            "custom_data": state["custom_data"],
            "paid_at": state["paid_at"],
            "receipt_url": state["receipt_url"],
            "apply_num": state["apply_num"],
            "vbank_num": state["vbank_num"],
            "vbank_name": state["vbank_name"],
            "vbank_holder": state["vbank_holder"],
            "vbank_date": state["vbank_date"],
            "currency": state["currency"],
        }

    def view_receipt(self, request: HttpRequest, imp_uid: str) -> HttpResponse:
        guard()
        payment = SandboxPayment.objects.filter(pg=self.name, key=imp_uid).first()
        if payment is None:
            return self.window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
        state = self.render(payment)
        return render(
            request,
            "pgpay_sandbox/portone/receipt.html",
            {
                "title": self.title,
                "state": state,
                "cancels": state["cancel_history"],
                "status": state["status"],
                "amount": state["amount"],
                "currency": state["currency"],
                "name": state["name"],
                "order_id": payment.order_id,
            },
        )

    # --- the console (PortOne's admin console, for people) -------------------------------------------

    def urlpatterns(self) -> list:
        api = csrf_exempt
        return [
            path("users/getToken", api(self.view_token), name="portone-token"),
            path("payments/prepare", api(self.view_prepare), name="portone-prepare"),
            path("payments/prepare/<str:merchant_uid>", api(self.view_prepare), name="portone-prepared"),
            path("payments/cancel", api(self.view_cancel), name="portone-cancel"),
            path("payments/find/<str:merchant_uid>", api(self.view_find), name="portone-find"),
            path("payments/find/<str:merchant_uid>/<str:status>", api(self.view_find), name="portone-find-status"),
            path("payments/findAll/<str:merchant_uid>", api(self.view_find_all), name="portone-find-all"),
            path("payments/findAll/<str:merchant_uid>/<str:status>", api(self.view_find_all), name="portone-find-all-status"),
            path("payments/<str:imp_uid>", api(self.view_payment), name="portone-payment"),
            path("vbanks/<str:imp_uid>", api(self.view_vbank), name="portone-vbank"),
            re_path(
                r"^(?P<rest>(?:users|payments|subscribe|vbanks|certifications|receipts|escrows)(?:/.*)?)$",
                api(self.view_unknown),
                name="portone-unknown",
            ),
            path("v1/iamport.js", self.view_sdk, name="portone-sdk"),
            path("v1/checkout", framed(self.view_checkout), name="portone-checkout"),
            # The window may run in a shop's iframe (third-party cookies): a per-window token guards it instead of the CSRF cookie.
            path("v1/pay/<str:key>", framed(self.view_pay), name="portone-pay"),
            path("v1/receipt/<str:imp_uid>", self.view_receipt, name="portone-receipt"),
            path("console/", csrf_protect(console.view), name="portone-console"),
        ]

    # --- what people, banks and PortOne's staff do (tests, control API, console) ------------------------

    def actions(self) -> dict[str, Any]:
        return {
            "pay": self.act_pay,
            "deposit": self.act_deposit,
            "cancel": self.act_cancel,
            "expire-tokens": self.act_revoke_tokens,
            "allow-other-amount": self.act_allow_other_amount,
            "state": self.act_payment,
            "token-requests": self.token_requests,
        }

    def act_pay(
        self,
        merchant_uid: str,
        amount: Any,
        pay_method: str = "card",
        outcome: str = "pay",
        name: str = "Sandbox order",
        currency: str = "KRW",
        notice_url: str | None = None,
        sandbox: bool | None = None,
        ignore_prepare: bool = False,
        origin: str = "",
        vbank_due: str | None = None,
        **buyer: Any,
    ) -> dict[str, Any]:
        """A buyer goes through the window without a browser; returns what the callback gets.

        ``outcome``: ``pay``, ``vbank``, ``decline`` or ``close``. The prepare
        table is honoured (a blocked window returns the failure) unless
        ``ignore_prepare`` plays a payment that got through anyway.
        ``vbank_due`` is ``IMP.request_pay``'s (YYYYMMDDhhmm, Korean time).
        """
        value = number(amount)
        if value is None or value <= 0:
            raise ApiError("INVALID_REQUEST", "amount must be a positive number")
        due = parse_vbank_due(vbank_due) if vbank_due else None
        if vbank_due and due is None:
            raise ApiError("INVALID_REQUEST", "vbank_due: YYYYMMDDhhmm (Korean time)")
        currency = currency.upper()
        now = clock.now()
        params = {
            "merchant_uid": merchant_uid,
            "amount": amount,
            "pay_method": pay_method,
            "name": name,
            **{k: v for k, v in buyer.items() if k.startswith("buyer_")},
        }
        with transaction.atomic():
            prepared = self._prepared_row(merchant_uid)
            if prepared is not None and not ignore_prepare:
                if prepared.take_allowance():
                    pass
                elif money(prepared.amount) != value:
                    return self._v1_failure(params, "amount_mismatch")
            payment = self.create_payment(
                {**params, "_amount": value, "_currency": currency},
                now=now,
                origin=(origin or _site()).rstrip("/"),
                session={
                    "mode": "iframe",
                    "notice_urls": [notice_url] if notice_url else [],
                    "sandbox": sandbox,
                    "requestedMethod": pay_method,
                    "vbankDue": due.isoformat() if due is not None else "",
                },
            )
            method = "vbank" if outcome == "vbank" or pay_method == "vbank" else pay_method
            if method == "vbank" and due is not None and due < now:
                outcome = "vbank_due"
            if outcome in ("decline", "close", "vbank_due"):
                reason = {"decline": "declined", "close": "closed"}.get(outcome, outcome)
                self._fail(payment, now, V1_WINDOW_ERRORS[reason][1])
                return self._v1_failure(params, reason, imp_uid=payment.key)
            self._pay(payment, now, method)
        return self.rsp(payment)

    def _act(self, imp_uid: str, change) -> dict[str, Any]:
        now = clock.now()
        with transaction.atomic():
            payment = self._locked(imp_uid)
            if payment is None:
                raise ApiError("NOT_FOUND")
            change(payment, now)
        return self.render(payment)

    def act_deposit(self, imp_uid: str) -> dict[str, Any]:
        """The money for a virtual account arrives: ``ready`` -> ``paid`` (webhook ``paid``)."""

        def change(payment, now):
            if payment.state["status"] != "ready" or not payment.state.get("vbank_num"):
                raise ApiError("INVALID_REQUEST", f"{payment.key} is not a virtual account waiting for its deposit")
            if lifecycle.deadline_passed(payment.session, now):
                raise ApiError(
                    "INVALID_REQUEST", f"{payment.key}: the account's deadline (vbank_date) has passed; the bank refuses the transfer"
                )
            self._deposit(payment, now)

        return self._act(imp_uid, change)

    def act_cancel(self, imp_uid: str, amount: Any = None, reason: str = "관리자 콘솔 취소") -> dict[str, Any]:
        """A cancel made in PortOne's console, full or partial (webhook ``cancelled`` with ``cancellation_id``)."""
        value = None if amount in (None, "") else number(amount)
        if amount not in (None, "") and (value is None or value <= 0):
            raise ApiError("CANCEL_INVALID", "amount must be a positive number")
        return self._act(imp_uid, lambda payment, now: self._cancel(payment, now, amount=value, reason=reason, console=True))

    def act_payment(self, imp_uid: str) -> dict[str, Any]:
        """The Payment object, whatever its channel."""
        return self._act(imp_uid, lambda payment, now: None)

    def act_revoke_tokens(self) -> int:
        """PortOne forgets every access token it issued (a restart, a key rotation): the next call with one is a 401."""
        return tokens.expire_all(self.name, clock.now())

    def token_requests(self) -> int:
        """How many ``POST /users/getToken`` calls were answered with a token."""
        return tokens.requests(self.name)

    def apply_due_to(self, key: str, now: datetime) -> bool:
        payment = self._locked(key)
        if payment is None or payment.status != "ready" or not payment.session.get("depositAt"):
            return False
        if parse_datetime(payment.session["depositAt"]) > now:
            return False
        if not lifecycle.deposit_has_come(payment.session, now):  # planned after the account's deadline: never arrives
            lifecycle.clear_deposit(payment.session)
            self._save(payment, now)
            return True
        self._deposit(payment, now)
        return True
