"""PortOne (ex-iamport), emulated: the V1 REST API with ``iamport.js``, and the V2 API with its browser SDK.

Two emulators share the settings section ``PGPAY_SANDBOX["PORTONE"]``:

:class:`PortOneSandbox` (``sandbox/portone/``), PortOne V1 as ``https://api.iamport.kr``
and ``https://cdn.iamport.kr/v1/iamport.js`` (contract: ``shared/gateways/portone.md``
and PortOne's V1 OpenAPI file):

- ``POST /users/getToken`` (JSON or form): the same token until it expires,
  its expiry pushed 5 minutes on when less than a minute is left, a new one
  after; ``Authorization: <token>``, ``Bearer <token>`` or ``X-ImpTokenHeader``;
  401 with the ``{code, message, response}`` envelope otherwise;
- ``POST``/``PUT /payments/prepare``, ``GET /payments/prepare/{merchant_uid}``:
  the amount registered before the window opens; ``IMP.request_pay`` with
  another amount is blocked;
- payments by ``imp_uid`` with a ``merchant_uid`` index allowing several
  attempts: ``GET /payments/{imp_uid}``, ``GET /payments/find/{merchant_uid}[/{status}]``
  (latest ``started_at``), ``GET /payments/findAll/{merchant_uid}[/{status}]``;
  test-channel payments (``sandbox: true``) only with ``?include_sandbox=true``;
- ``POST /payments/cancel`` with ``checksum``; business errors as HTTP 200
  with ``code != 0``;
- the payment window (an iframe layer calling back ``IMP.request_pay``'s
  callback on a PC, a full-page redirect to ``m_redirect_url`` on a phone);
- webhooks ``{imp_uid, merchant_uid, status[, cancellation_id]}``, unsigned,
  to ``notice_url`` or ``WEBHOOK_URL``: on payment, virtual account issued,
  deposit and console cancel (API cancels only with ``enable_webhook``).

:class:`PortOneV2Sandbox` (``sandbox/portone-v2/``), PortOne V2 as
``https://api.portone.io`` and ``https://cdn.portone.io/v2/browser-sdk.js``:
``Authorization: PortOne <secret>``, ``POST /payments/{id}/pre-register``,
``GET /payments/{id}``, ``POST /payments/{id}/cancel`` with
``currentCancellableAmount``, typed ``{type, message}`` errors,
``PortOne.requestPayment`` and webhooks signed with Standard Webhooks.

Where PortOne's documentation is silent the sandbox picks the likeliest
answer and says so in a comment (search "unconfirmed").
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import string
import time
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from django.core import checks
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import path, re_path, reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from ..gateways import standard_webhooks
from . import clock, faults, webhooks
from .base import Answer, ApiContext, ApiError, Problem, SandboxPG, dumps, framed, guard, loads
from .lifecycle import Ledger, RefundFields, Refusal, Stage
from .models import SandboxPayment

KST = ZoneInfo("Asia/Seoul")
_DIGITS = string.digits
_ALNUM = string.ascii_letters + string.digits

#: ``pg`` values of the rows that hold PortOne's other tables (never payments).
TOKEN_PG = "portone.token"
PREPARE_PG = "portone.prepare"
V2_PREPARE_PG = "portone-v2.prep"

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
MERCHANT_UID_MAX = 40


# --- small helpers ----------------------------------------------------------------------


def unix(moment: datetime) -> int:
    """Unix seconds (V1's times)."""
    return int(moment.timestamp())


def rfc3339(moment: datetime) -> str:
    """V2's times: UTC, milliseconds, ``Z``."""
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def number(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON number or a form string, or None."""
    if value is None or isinstance(value, (bool, float)):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 30 or not text.isascii():
            return None
        try:
            found = Decimal(text)
        except InvalidOperation:
            return None
        return found if found.is_finite() else None
    return None


def stored(amount: Decimal) -> int | str:
    """How an amount is kept in a JSONField: an int when whole, else the decimal string (never a float)."""
    return int(amount) if amount == amount.to_integral_value() else str(amount.normalize())


def money(value: Any) -> Decimal:
    """An amount kept by :func:`stored`, back as Decimal."""
    return Decimal(str(value))


def wire(amount: Decimal) -> int | Decimal:
    """An amount as it goes on the wire: a JSON integer when whole."""
    return int(amount) if amount == amount.to_integral_value() else amount


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def _random(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def with_query(url: str, params: dict[str, Any]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if "?" not in url:
        return f"{url}?{query}"
    return f"{url}{'' if url.endswith(('?', '&')) else '&'}{query}"


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _format(amount: Decimal) -> str:
    return f"{amount:,.0f}" if amount == amount.to_integral_value() else f"{amount:,}"


class _PortOneCommon(SandboxPG):
    """What both PortOne emulators share: settings, bodies, the window's plumbing."""

    settings_section = "PORTONE"
    key_settings = ("IMP_KEYS", "IMP_SECRETS", "V2_API_SECRETS")
    required_key_settings = ("IMP_KEYS", "V2_API_SECRETS")

    def _list(self, name: str) -> list[str]:
        value = self.config().get(name) or []
        return [v for v in value if isinstance(v, str) and v] if isinstance(value, (list, tuple)) else []

    def _seconds(self, name: str, default: float) -> timedelta:
        return timedelta(seconds=float(self.config().get(name, default)))

    @property
    def sandbox_payments(self) -> bool:
        """Payments are made on a test channel (``sandbox: true`` / channel ``TEST``): default True."""
        return bool(self.config().get("TEST_CHANNEL", True))

    def parse_body(self, ctx: ApiContext) -> Any:
        """JSON, or a form (V1 takes both)."""
        request = ctx.request
        if not request.body:
            return None
        content_type = request.content_type or ""
        if content_type == "application/x-www-form-urlencoded" or (
            not request.body.lstrip().startswith((b"{", b"[")) and b"=" in request.body and content_type != "application/json"
        ):
            try:
                form = QueryDict(request.body, encoding="utf-8")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError("INVALID_REQUEST") from exc
            return {k: form.get(k) for k in form}
        try:
            return loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError("INVALID_REQUEST") from exc

    def _data(self, ctx: ApiContext) -> Any:
        """The body, parsed once (PUT bodies too); None when unreadable (the handler says why)."""
        if ctx.data is None and ctx.request.body:
            try:
                ctx.data = self.parse_body(ctx)
            except ApiError:
                return None
        return ctx.data

    def _locked(self, key: Any, pg: str | None = None) -> SandboxPayment | None:
        if not isinstance(key, str) or not key:
            return None
        return SandboxPayment.objects.select_for_update().filter(pg=pg or self.name, key=key).first()

    def _resolve(self, url: str, origin: str) -> str:
        if not url or url.startswith(("http://", "https://")):
            return url
        return f"{(origin or _site()).rstrip('/')}/{url.lstrip('/')}"

    def _window_error(self, request: HttpRequest, code: str, message: str, *, status: int = 400) -> HttpResponse:
        return render(request, "pgpay_sandbox/portone/error.html", {"code": code, "message": message, "title": self.title}, status=status)

    def _view_script(self, request: HttpRequest, template: str, checkout: str) -> HttpResponse:
        guard()
        origin = f"{request.scheme}://{request.get_host()}"
        script = render_to_string(template, {"checkout_url": request.build_absolute_uri(reverse(checkout)), "origin": origin})
        response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
        response["Cache-Control"] = "no-store"
        response["Access-Control-Allow-Origin"] = "*"
        return response

    def _checkout_payload(self, request: HttpRequest) -> dict | None:
        try:
            payload = loads(request.POST.get("payload", ""))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _finish_window(self, request: HttpRequest, mode: str, result: dict, redirect_url: str) -> HttpResponse:
        """Back to the shop: the iframe posts ``result`` to the SDK; redirect mode goes to ``redirect_url``."""
        if mode == "redirect" and redirect_url:
            return HttpResponseRedirect(redirect_url)
        return render(request, "pgpay_sandbox/portone/done.html", {"result": result, "title": self.title})

    def _deposit_choice(self, request: HttpRequest) -> float | None:
        value = request.POST.get("deposit_after", "")
        if value in ("", "manual"):
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            return None


# =============================================================================================
# V1
# =============================================================================================


class PortOneSandbox(_PortOneCommon):
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

    # --- settings ---------------------------------------------------------------------

    def webhook_schedule(self) -> list[float]:
        from . import conf

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
        row = SandboxPayment.objects.filter(pg=TOKEN_PG, order_id=_hash(token)[:64], status="active").first()
        if row is None or int(row.state.get("expired_at", 0)) <= unix(ctx.now):
            raise ApiError("UNAUTHORIZED")
        return row.key

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
            hours = float(self.config().get("VBANK_HOURS", 168))
            state.update(
                vbank_code="004",
                vbank_name="KB국민은행",
                vbank_num="T" + _random(13, _DIGITS),
                vbank_holder=str(self.config().get("VBANK_HOLDER") or "（주）샌드박스상점"),
                vbank_date=unix(now + timedelta(hours=hours)),
                vbank_issued_at=unix(now),
            )
            if payment.session.get("depositAfter") is not None:
                payment.session["depositAt"] = (now + timedelta(seconds=float(payment.session["depositAfter"]))).isoformat()
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
        payment.session.pop("depositAt", None)
        payment.session.pop("depositAfter", None)
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

    def _token_row(self, imp_key: str) -> SandboxPayment:
        key = "key:" + _hash(imp_key)[:40]
        for _attempt in range(3):
            row = self._locked(key, TOKEN_PG)
            if row is not None:
                return row
            try:
                with transaction.atomic():
                    SandboxPayment.objects.create(pg=TOKEN_PG, key=key, order_id="", status="none", state={"requests": 0, "issued": 0})
            except IntegrityError:
                pass
        raise ApiError("FAILED_INTERNAL_SYSTEM_PROCESSING")

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
        row = self._token_row(imp_key)
        now = unix(ctx.now)
        state, session = row.state, row.session
        lifetime = int(self._seconds("TOKEN_LIFETIME", 1800).total_seconds())
        state["requests"] = int(state.get("requests", 0)) + 1
        expired_at = int(state.get("expired_at", 0))
        if row.status != "active" or expired_at <= now:
            token = secrets.token_hex(20)
            session["token"] = token
            row.order_id = _hash(token)[:64]
            expired_at = now + lifetime
            state["issued"] = int(state.get("issued", 0)) + 1
            row.status = "active"
        elif expired_at - now < 60:
            # portone.md §1: less than a minute left -> the same token, 5 minutes longer.
            expired_at += 300
        state["expired_at"] = expired_at
        row.due_at = None
        row.save(update_fields=["state", "session", "status", "order_id", "due_at", "updated_at"])
        return self.ok({"access_token": session["token"], "now": now, "expired_at": expired_at})

    def _prepare_body(self, ctx: ApiContext) -> tuple[str, Decimal, str | None]:
        data = self._data(ctx)
        if not isinstance(data, dict):
            raise ApiError("INVALID_REQUEST")
        merchant_uid, amount, currency = data.get("merchant_uid"), number(data.get("amount")), data.get("currency")
        if not isinstance(merchant_uid, str) or not merchant_uid or len(merchant_uid) > MERCHANT_UID_MAX:
            raise ApiError("INVALID_REQUEST", f"merchant_uid는 1~{MERCHANT_UID_MAX}자의 문자열이어야 합니다.")
        if amount is None or amount <= 0:
            raise ApiError("INVALID_REQUEST", "amount는 0보다 큰 숫자여야 합니다.")
        if currency in (None, ""):
            currency = None
        elif not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise ApiError("INVALID_REQUEST", "currency가 올바르지 않습니다.")
        return merchant_uid, amount, currency.upper() if currency else None

    def _prepared(self, row: SandboxPayment) -> dict[str, Any]:
        state = row.state
        return {"merchant_uid": state["merchant_uid"], "amount": wire(money(state["amount"])), "currency": state.get("currency")}

    def api_prepare(self, ctx: ApiContext, fault: faults.Fault | None = None, merchant_uid: str = "") -> Answer:
        method = ctx.request.method
        if method == "GET":
            row = SandboxPayment.objects.filter(pg=PREPARE_PG, key=merchant_uid).first()
            if row is None:
                raise ApiError("PREPARE_NOT_FOUND")
            return self.ok(self._prepared(row))
        merchant_uid, amount, currency = self._prepare_body(ctx)
        row = self._locked(merchant_uid, PREPARE_PG)
        state = {"merchant_uid": merchant_uid, "amount": stored(amount), "currency": currency}
        if method == "PUT":
            if row is None:
                raise ApiError("PREPARE_NOT_FOUND")
        elif row is not None and str(self.config().get("PREPARE_AGAIN") or "error") != "overwrite":
            # unconfirmed: what PortOne answers a second registration; HTTP 200, code 1 here
            # ("overwrite" in the settings replaces it instead). Our gateway handles both.
            raise ApiError("PREPARE_REGISTERED")
        if row is None:
            row = SandboxPayment.objects.create(
                pg=PREPARE_PG, key=merchant_uid, order_id=merchant_uid, status="prepared", state=state, session={}
            )
        else:
            row.state = state
            row.save(update_fields=["state", "updated_at"])
        return self.ok(self._prepared(row))

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
        payment.session.pop("depositAt", None)
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

    def view_prepare(self, request: HttpRequest, merchant_uid: str = "") -> HttpResponse:
        allowed = ("GET",) if merchant_uid else ("POST", "PUT")
        if request.method not in allowed:
            return self._refuse(request, "METHOD_NOT_ALLOWED")

        def match(ctx):
            data = self._data(ctx)
            return [merchant_uid or (data.get("merchant_uid") if isinstance(data, dict) else "")]

        return self.serve(request, "prepare", self.api_prepare, match=match, merchant_uid=merchant_uid)

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
        guard()
        if request.method != "POST":
            return self._window_error(request, "INVALID_REQUEST", "POST only.", status=405)
        payload = self._checkout_payload(request)
        if payload is None or not isinstance(payload.get("params"), dict):
            return self._window_error(request, "INVALID_REQUEST", "payload is not JSON.")
        params = dict(payload["params"])
        mode = "redirect" if payload.get("mode") == "redirect" else "iframe"
        session = {
            "mode": mode,
            "m_redirect_url": params.get("m_redirect_url") if _is_http_url(params.get("m_redirect_url")) else "",
            "userAgent": str(payload.get("userAgent") or request.headers.get("User-Agent", ""))[:300],
        }

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
        if problems:
            return refuse("invalid", "결제 요청 파라미터가 올바르지 않습니다: " + "; ".join(problems))
        now = clock.now()
        origin = f"{request.scheme}://{request.get_host()}"
        with transaction.atomic():
            prepared = self._locked(merchant_uid, PREPARE_PG)
            if prepared is not None:
                allowed = prepared.session.pop("allowOtherAmount", False)
                if money(prepared.state["amount"]) != amount and not allowed:
                    return refuse("amount_mismatch")
                if prepared.state.get("currency") and prepared.state["currency"] != currency and not allowed:
                    return refuse("currency_mismatch")
                if allowed:
                    prepared.save(update_fields=["session", "updated_at"])
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
                },
            )
        return HttpResponseRedirect(reverse("pgpay_sandbox:portone-pay", args=[payment.key]), status=303)

    def view_pay(self, request: HttpRequest, imp_uid: str) -> HttpResponse:
        """The payment window; POST acts on the buyer's choice."""
        guard()
        if request.method == "POST":
            now = clock.now()
            with transaction.atomic():
                payment = self._locked(imp_uid)
                if payment is None:
                    return self._window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
                token = request.POST.get("window_token", "")
                if not _same(token, str(payment.session.get("window_token", ""))):
                    return self._window_error(request, "INVALID_REQUEST", "The window token is missing or wrong.", status=403)
                if not payment.session.get("window"):
                    return self._window(request, payment, status=409)
                result = self._window_action(request, payment, now)
                if result is None:
                    return self._window(request, payment, status=400)
            return self._finish_window(request, payment.session.get("mode", "iframe"), result, self._redirect_url(payment.session, result))
        payment = SandboxPayment.objects.filter(pg=self.name, key=imp_uid).first()
        if payment is None:
            return self._window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
        return self._window(request, payment)

    def _window(self, request: HttpRequest, payment: SandboxPayment, *, status: int = 200) -> HttpResponse:
        state = payment.state
        amount = money(state["amount"])
        requested = payment.session.get("requestedMethod") or "card"
        context = {
            "title": self.title,
            "payment": payment,
            "order_name": state.get("name") or "",
            "order_id": payment.order_id,
            "payment_key": payment.key,
            "amount_display": _format(amount),
            "currency": state["currency"],
            "method": requested,
            "method_label": V1_METHODS.get(requested, requested),
            "buyer": state.get("buyer_name") or "",
            "merchant": payment.session.get("merchantCode", ""),
            "open": bool(payment.session.get("window")),
            "status": state["status"],
            "vbank_only": requested == "vbank",
            "window_token": payment.session.get("window_token", ""),
            "lookup_faults": LOOKUP_FAULT_CHOICES,
            "action_url": reverse("pgpay_sandbox:portone-pay", args=[payment.key]),
            "sandbox_flag": state.get("sandbox"),
        }
        return render(request, "pgpay_sandbox/portone/pay.html", context, status=status)

    def _window_action(self, request: HttpRequest, payment: SandboxPayment, now: datetime) -> dict[str, Any] | None:
        action = request.POST.get("action", "")
        if action in ("decline", "close"):
            reason = "declined" if action == "decline" else "closed"
            self._fail(payment, now, V1_WINDOW_ERRORS[reason][1])
            return self._v1_failure({"merchant_uid": payment.order_id}, reason, imp_uid=payment.key)
        if action not in ("pay", "vbank"):
            return None
        requested = payment.session.get("requestedMethod") or "card"
        method = "vbank" if action == "vbank" else ("card" if requested == "vbank" else requested)
        if method == "vbank":
            payment.session["depositAfter"] = self._deposit_choice(request)
        fault = request.POST.get("lookup_fault", "")
        if fault in dict(LOOKUP_FAULT_CHOICES) and fault:
            faults.arm(self.name, "lookup", fault, match=payment.key, **({"delay": 35} if fault.startswith("timeout") else {}))
        self._pay(payment, now, method)
        return self.rsp(payment)

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
            return self._window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
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

    def view_console(self, request: HttpRequest) -> HttpResponse:
        guard()
        error = ""
        if request.method == "POST":
            op = request.POST.get("op", "")
            try:
                if op == "deposit":
                    self.act_deposit(request.POST.get("imp_uid", ""))
                elif op == "cancel":
                    raw = request.POST.get("amount", "").strip()
                    self.act_cancel(request.POST.get("imp_uid", ""), amount=raw or None)
                elif op == "revoke":
                    self.act_revoke_tokens()
                elif op == "allow":
                    self.act_allow_other_amount(request.POST.get("merchant_uid", "").strip())
                elif op == "v2-deposit":
                    _v2().act_deposit(request.POST.get("payment_id", ""))
                elif op == "v2-cancel":
                    _v2().act_cancel(request.POST.get("payment_id", ""), amount=request.POST.get("amount", "").strip() or None)
            except (ApiError, ValueError) as exc:
                error = f"{op}: {getattr(exc, 'message', None) or getattr(exc, 'code', None) or exc}"
            if not error:
                return HttpResponseRedirect(reverse("pgpay_sandbox:portone-console"))
        payments = []
        for payment in SandboxPayment.objects.filter(pg=self.name).order_by("-id")[:50]:
            state = payment.state
            payments.append(
                {
                    "imp_uid": payment.key,
                    "merchant_uid": payment.order_id,
                    "status": state["status"],
                    "pay_method": state["pay_method"],
                    "amount": _format(money(state["amount"])),
                    "balance": _format(self.balance(payment)),
                    "sandbox": state.get("sandbox"),
                    "vbank": bool(state.get("vbank_num")),
                    "cancellable": state["status"] == "paid" and self.balance(payment) > 0,
                }
            )
        prepared = [
            {
                "merchant_uid": row.key,
                "amount": _format(money(row.state["amount"])),
                "currency": row.state.get("currency") or "-",
                "allow": row.session.get("allowOtherAmount", False),
            }
            for row in SandboxPayment.objects.filter(pg=PREPARE_PG).order_by("-id")[:30]
        ]
        v2 = _v2()
        v2_payments = [
            {
                "payment_id": payment.key,
                "status": payment.state["status"],
                "amount": _format(Decimal(payment.state["amount"]["total"])),
                "balance": _format(Decimal(v2.balance(payment))),
                "channel": payment.state["channel"]["type"],
                "vbank": payment.state["status"] == "VIRTUAL_ACCOUNT_ISSUED",
                "cancellable": payment.state["status"] in ("PAID", "PARTIAL_CANCELLED"),
            }
            for payment in SandboxPayment.objects.filter(pg=v2.name).order_by("-id")[:50]
        ]
        context = {
            "title": self.title,
            "payments": payments,
            "v2_payments": v2_payments,
            "prepared": prepared,
            "token_requests": self.token_requests(),
            "error": error,
            "dashboard_url": reverse("pgpay_sandbox:index"),
        }
        return render(request, "pgpay_sandbox/portone/console.html", context, status=400 if error else 200)

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
            path("v1/pay/<str:imp_uid>", framed(self.view_pay), name="portone-pay"),
            path("v1/receipt/<str:imp_uid>", self.view_receipt, name="portone-receipt"),
            path("console/", csrf_protect(self.view_console), name="portone-console"),
        ]

    # --- what people, banks and PortOne's staff do (tests, control API, console) ------------------------

    def actions(self) -> dict[str, Any]:
        return {
            "pay": self.act_pay,
            "deposit": self.act_deposit,
            "cancel": self.act_cancel,
            "revoke-tokens": self.act_revoke_tokens,
            "allow-other-amount": self.act_allow_other_amount,
            "payment": self.act_payment,
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
        **buyer: Any,
    ) -> dict[str, Any]:
        """A buyer goes through the window without a browser; returns what the callback gets.

        ``outcome``: ``pay``, ``vbank``, ``decline`` or ``close``. The prepare
        table is honoured (a blocked window returns the failure) unless
        ``ignore_prepare`` plays a payment that got through anyway.
        """
        value = number(amount)
        if value is None or value <= 0:
            raise ApiError("INVALID_REQUEST", "amount must be a positive number")
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
            prepared = self._locked(merchant_uid, PREPARE_PG)
            if prepared is not None and not ignore_prepare:
                if prepared.session.pop("allowOtherAmount", False):
                    prepared.save(update_fields=["session", "updated_at"])
                elif money(prepared.state["amount"]) != value:
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
                },
            )
            if outcome in ("decline", "close"):
                reason = "declined" if outcome == "decline" else "closed"
                self._fail(payment, now, V1_WINDOW_ERRORS[reason][1])
                return self._v1_failure(params, reason, imp_uid=payment.key)
            self._pay(payment, now, "vbank" if outcome == "vbank" or pay_method == "vbank" else pay_method)
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
        return SandboxPayment.objects.filter(pg=TOKEN_PG, status="active").update(status="revoked")

    def act_allow_other_amount(self, merchant_uid: str) -> dict[str, Any]:
        """A developer fault: the next window of ``merchant_uid`` opens with whatever amount the browser sends.

        Plays seed 003's tampered payment, which PortOne's prepare check would block.
        """
        with transaction.atomic():
            row = self._locked(merchant_uid, PREPARE_PG)
            if row is None:
                raise ApiError("PREPARE_NOT_FOUND")
            row.session["allowOtherAmount"] = True
            row.save(update_fields=["session", "updated_at"])
        return self._prepared(row)

    def token_requests(self) -> int:
        """How many ``POST /users/getToken`` calls were answered with a token."""
        return sum(int(row.state.get("requests", 0)) for row in SandboxPayment.objects.filter(pg=TOKEN_PG))

    def apply_due_to(self, key: str, now: datetime) -> bool:
        payment = self._locked(key)
        if payment is None or payment.status != "ready" or not payment.session.get("depositAt"):
            return False
        if parse_datetime(payment.session["depositAt"]) > now:
            return False
        self._deposit(payment, now)
        return True


#: The window's "when the shop verifies this payment" choices: (fault kind, label).
LOOKUP_FAULT_CHOICES = [
    ("", "normal"),
    ("error_before", "error_before"),
    ("timeout_before", "timeout_before"),
    ("malformed_before", "malformed_before"),
]


def _site() -> str:
    from .conf import site_url

    return site_url()


def _mask(key: str) -> str:
    return f"{key[:8]}…{key[-4:]}" if isinstance(key, str) and len(key) > 14 else "…"


# =============================================================================================
# V2
# =============================================================================================

#: V2 error types: type -> (HTTP status, message) (PortOne's V2 OpenAPI file gives the statuses).
V2_ERRORS: dict[str, tuple[int, str]] = {
    "INVALID_REQUEST": (400, "요청된 입력 정보가 유효하지 않습니다."),
    "UNAUTHORIZED": (401, "인증 정보가 올바르지 않습니다."),
    "FORBIDDEN": (403, "요청이 거절되었습니다."),
    "PAYMENT_NOT_FOUND": (404, "결제 건이 존재하지 않습니다."),
    "NOT_FOUND": (404, "존재하지 않는 API 경로입니다."),
    "METHOD_NOT_ALLOWED": (405, "허용되지 않은 HTTP 메서드입니다."),
    "ALREADY_PAID": (409, "결제가 이미 완료되었습니다."),
    "PAYMENT_NOT_PAID": (409, "결제가 완료되지 않았습니다."),
    "PAYMENT_ALREADY_CANCELLED": (409, "결제가 이미 취소되었습니다."),
    "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN": (409, "취소 가능 잔액 검증에 실패했습니다."),
    "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT": (409, "결제 취소 금액이 취소 가능 금액을 초과했습니다."),
    "PAYMENT_NOT_WAITING_FOR_DEPOSIT": (409, "결제 건이 입금 대기 상태가 아닙니다."),
    "FAILED_INTERNAL_SYSTEM_PROCESSING": (500, "일시적인 오류가 발생했습니다."),
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": (500, "일시적인 오류가 발생했습니다."),
}
#: The pipeline's problems in V2's words.
V2_PROBLEMS = {
    Problem.MALFORMED_BODY: "INVALID_REQUEST",
    Problem.INTERNAL: "FAILED_INTERNAL_SYSTEM_PROCESSING",
    Problem.INTERNAL_AFTER_COMMIT: "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
}
#: The lifecycle's refusals in V2's words (the V2 OpenAPI file's error types of ``POST /payments/{paymentId}/cancel``).
V2_REFUSALS = {
    Refusal.ALREADY_CANCELED: "PAYMENT_ALREADY_CANCELLED",
    Refusal.NOT_CANCELABLE: "PAYMENT_NOT_PAID",
    Refusal.BALANCE_MISMATCH: "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
    Refusal.INVALID_AMOUNT: ("INVALID_REQUEST", "amount는 0보다 커야 합니다."),
    Refusal.OVER_BALANCE: "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
    Refusal.PARTIAL_UNPAID_ACCOUNT: "PAYMENT_NOT_PAID",
    Refusal.PARTIAL_NOT_ALLOWED: ("INVALID_REQUEST", "부분 취소를 지원하지 않는 결제입니다."),
    # The spec names no error of its own for a virtual-account refund without ``refundAccount``
    # ("계좌 환불일 경우 입력합니다"): InvalidRequestError (400) is its error for a missing
    # or invalid input. unconfirmed: the message.
    Refusal.REFUND_ACCOUNT_REQUIRED: ("INVALID_REQUEST", "가상계좌 환불에는 환불 계좌(refundAccount)가 필요합니다."),
    Refusal.REFUND_ACCOUNT_INVALID: ("INVALID_REQUEST", "refundAccount에는 bank, number, holderName이 필요합니다."),
}
#: ``refundAccount`` of ``CancelPaymentBody`` (``CancelPaymentBodyRefundAccount``: bank, number, holderName required).
V2_REFUND_FIELDS = RefundFields(bank="bank", number="number", holder="holderName", phone="holderPhoneNumber", digits_only=False)
#: ``payMethod`` of ``requestPayment`` -> (``method.type`` of the Payment, label).
V2_METHODS: dict[str, tuple[str, str]] = {
    "CARD": ("PaymentMethodCard", "카드"),
    "VIRTUAL_ACCOUNT": ("PaymentMethodVirtualAccount", "가상계좌"),
    "TRANSFER": ("PaymentMethodTransfer", "계좌이체"),
    "MOBILE": ("PaymentMethodMobile", "휴대폰"),
    "EASY_PAY": ("PaymentMethodEasyPay", "간편결제"),
}
#: What the window answers ``requestPayment`` on failure: (code, message). Unconfirmed
#: beyond the shape ``{code, message, paymentId, txId, transactionType}``.
V2_WINDOW_ERRORS: dict[str, tuple[str, str]] = {
    "closed": ("FAILURE_TYPE_PG", "[PG사 에러] 사용자가 결제를 취소하였습니다."),
    "declined": ("FAILURE_TYPE_PG", "[PG사 에러] 카드사 승인 거절 (한도초과)"),
    "amount_mismatch": ("FAILURE_TYPE_PROCESS", "사전 등록된 결제 정보와 결제 금액이 일치하지 않습니다."),
    "already_paid": ("FAILURE_TYPE_PROCESS", "이미 결제가 완료된 paymentId입니다."),
    "invalid": ("INVALID_REQUEST", "결제 요청 파라미터가 올바르지 않습니다."),
    "store": ("INVALID_REQUEST", "등록되지 않은 storeId입니다."),
}
#: V2's statuses in the lifecycle's terms (any other: not paid yet).
V2_STAGES = {"PAID": Stage.PAID, "PARTIAL_CANCELLED": Stage.PAID, "CANCELLED": Stage.CANCELED}
#: Webhook types sent unless ``V2_WEBHOOK_EVENTS`` says otherwise.
V2_DEFAULT_EVENTS = ("Transaction.Paid", "Transaction.VirtualAccountIssued", "Transaction.Cancelled", "Transaction.PartialCancelled")


class PortOneV2Sandbox(_PortOneCommon):
    """PortOne V2: REST API, ``browser-sdk.js`` and its window (see the module docstring).

    Settings, also in ``PGPAY_SANDBOX["PORTONE"]``: ``V2_API_SECRETS`` (made-up
    ``test_`` secrets for ``Authorization: PortOne …``), ``STORE_IDS``
    (``store-…``; the first is the secret's own store), ``V2_WEBHOOK_SECRET``
    (``whsec_…``: deliveries are signed with it), ``V2_WEBHOOK_URL``, and
    optionally ``V2_WEBHOOK_EVENTS``, ``TEST_CHANNEL`` (True: channel ``type``
    is ``TEST``), ``VBANK_HOURS``.
    """

    name = "portone-v2"
    title = "PortOne V2"
    problem_codes = V2_PROBLEMS
    refusals = V2_REFUSALS
    #: Up to 5 retries (portone.md §11); the spacing is unconfirmed: a minute here.
    retry_schedule = (60, 60, 60, 60, 60)

    def dashboard_context(self, base: str) -> dict[str, Any]:
        from django.utils.translation import gettext

        stores = self._list("STORE_IDS")
        console = base.rsplit("/", 1)[0] + "/portone/console/"
        return {
            "sdk_url": base + "/v2/browser-sdk.js",
            "client_keys": stores,
            "secret_keys": [_mask(k) for k in self._list("V2_API_SECRETS")],
            "webhook_url": self._v2_webhook_url(base.rsplit("/sandbox/", 1)[0]),
            "console_url": console,
            "console_title": gettext("PortOne console: payments, deposits, cancels, tokens"),
            "snippet_title": gettext("Point a PortOne V2 gateway at the sandbox:"),
            "snippet": (
                '"portone-v2": {\n'
                '    "CLASS": "django_pgpay.gateways.portone.PortOneV2Gateway",\n'
                '    "OPTIONS": {\n'
                '        "API_SECRET": os.environ["PORTONE_API_SECRET"],  # one of PGPAY_SANDBOX["PORTONE"]["V2_API_SECRETS"]\n'
                f'        "STORE_ID": "{stores[0] if stores else "store-sandbox"}",\n'
                '        "CHANNEL_KEY": "channel-key-sandbox",\n'
                '        "WEBHOOK_SECRET": os.environ["PORTONE_WEBHOOK_SECRET"],  # PGPAY_SANDBOX["PORTONE"]["V2_WEBHOOK_SECRET"]\n'
                '        "INCLUDE_SANDBOX": True,   # sandbox payments are made on TEST channels\n'
                f'        "API_BASE": "{base}",\n'
                f'        "JS_SDK_URL": "{base}/v2/browser-sdk.js",\n'
                "    },\n"
                "},"
            ),
        }

    def _v2_webhook_url(self, origin: str = "") -> str:
        url = str(self.config().get("V2_WEBHOOK_URL") or "")
        return self._resolve(url, origin) if url else ""

    # --- protocol ---------------------------------------------------------------------

    def authenticate(self, ctx: ApiContext) -> str:
        header = ctx.request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme != "PortOne" or not secret or not any(_same(secret, known) for known in self._list("V2_API_SECRETS")):
            raise ApiError("UNAUTHORIZED")
        return secret

    def error_answer(self, ctx: ApiContext, error: ApiError) -> Answer:
        status, message = V2_ERRORS.get(error.code, (400, error.code))
        return Answer.json(error.status or status, {"type": error.code, "message": error.message or message})

    def _store(self, ctx: ApiContext, given: Any) -> str:
        stores = self._list("STORE_IDS")
        if given in (None, ""):
            return stores[0] if stores else "store-sandbox"
        if not isinstance(given, str) or given not in stores:
            raise ApiError("FORBIDDEN", "접근 권한이 없는 상점입니다.")
        return given

    # --- the Payment object --------------------------------------------------------------

    def _payment(self, payment_id: str, store_id: str, *, lock: bool = True) -> SandboxPayment | None:
        rows = SandboxPayment.objects.filter(pg=self.name, key=payment_id)
        row = (rows.select_for_update() if lock else rows).first()
        if row is None or row.state.get("storeId") != store_id:
            return None
        return row

    def _save(self, payment: SandboxPayment, now: datetime, status: str | None = None) -> None:
        state = payment.state
        if status is not None and status != state["status"]:
            state["status"] = status
            state["statusChangedAt"] = rfc3339(now)
        state["updatedAt"] = rfc3339(now)
        payment.status = state["status"]
        deposit_at = payment.session.get("depositAt")
        payment.due_at = parse_datetime(deposit_at) if deposit_at and payment.status == "VIRTUAL_ACCOUNT_ISSUED" else None
        payment.save(update_fields=["state", "session", "status", "due_at", "updated_at"])

    def _notify(self, payment: SandboxPayment, now: datetime, kind: str, cancellation_id: str | None = None) -> None:
        events = self.config().get("V2_WEBHOOK_EVENTS") or V2_DEFAULT_EVENTS
        if kind not in events:
            return
        origin = payment.session.get("origin", "")
        urls = [self._resolve(u, origin) for u in payment.session.get("noticeUrls") or () if u]
        if not urls:
            url = self._v2_webhook_url(origin)
            urls = [url] if url else []
        data = {"paymentId": payment.key, "storeId": payment.state["storeId"], "transactionId": payment.state["transactionId"]}
        if cancellation_id:
            data["cancellationId"] = cancellation_id
        body = dumps({"type": kind, "timestamp": rfc3339(now), "data": data})
        for url in urls:
            headers = {"Content-Type": "application/json", "webhook-id": "msg_" + uuid.uuid4().hex}
            webhooks.enqueue(self.name, kind, body, url=url, payment_key=payment.key, headers=headers, now=now)

    def delivery_headers(self, webhook, now) -> dict[str, str]:
        """Standard Webhooks: every attempt signed again with a fresh timestamp, the same ``webhook-id``."""
        headers = dict(webhook.headers or {"Content-Type": "application/json"})
        secret = self.config().get("V2_WEBHOOK_SECRET")
        msg_id = headers.get("webhook-id")
        if secret and msg_id:
            stamp = int(time.time())  # the shop checks it against its own clock
            headers["webhook-timestamp"] = str(stamp)
            headers["webhook-signature"] = standard_webhooks.sign(secret, msg_id, stamp, webhook.body.encode("utf-8"))
        return headers

    # --- state changes -----------------------------------------------------------------------

    def _open(
        self, req: dict[str, Any], *, store_id: str, now: datetime, origin: str, session: dict[str, Any], existing: SandboxPayment | None
    ) -> SandboxPayment:
        """A READY attempt, as ``requestPayment`` makes it when the window opens."""
        customer = req.get("customer") if isinstance(req.get("customer"), dict) else {}
        state = {
            "status": "READY",
            "id": req["paymentId"],
            "transactionId": str(uuid.uuid4()),
            "merchantId": "merchant-" + _hash(store_id)[:32],
            "storeId": store_id,
            "channel": {
                "type": "TEST" if self.sandbox_payments else "LIVE",
                "id": "channel-id-sandbox",
                "key": str(req.get("channelKey"))[:100],
                "name": "샌드박스 채널",
                "pgProvider": "TOSSPAYMENTS",
                "pgMerchantId": "tosstest",
            },
            "version": "V2",
            "requestedAt": rfc3339(now),
            "updatedAt": rfc3339(now),
            "statusChangedAt": rfc3339(now),
            "orderName": str(req.get("orderName"))[:200],
            "amount": {
                "total": req["totalAmount"],
                "taxFree": 0,
                "vat": (req["totalAmount"] * 10 + 55) // 110 if req["_currency"] == "KRW" else 0,
                "supply": 0,
                "discount": 0,
                "paid": 0,
                "cancelled": 0,
                "cancelledTaxFree": 0,
            },
            "currency": req["_currency"],
            "customer": {
                k: str(v)[:200]
                for k, v in (
                    ("name", customer.get("fullName")),
                    ("email", customer.get("email")),
                    ("phoneNumber", customer.get("phoneNumber")),
                )
                if v
            },
            "origin": {
                "platformType": "MOBILE" if session.get("mode") == "redirect" else "PC",
                "userAgent": session.get("userAgent") or "sandbox",
                "url": session.get("url") or origin,
                "ipAddress": session.get("ip") or "127.0.0.1",
            },
            "isCulturalExpense": False,
        }
        state["amount"]["supply"] = state["amount"]["total"] - state["amount"]["vat"]
        session = {
            **session,
            "origin": origin,
            "window": True,
            "window_token": secrets.token_urlsafe(16),
            "payMethod": req.get("payMethod") or "CARD",
        }
        if existing is not None:
            existing.state, existing.session = state, session
            existing.order_id = req["paymentId"]
            self._save(existing, now)
            return existing
        return SandboxPayment.objects.create(
            pg=self.name, key=req["paymentId"], order_id=req["paymentId"], status="READY", state=state, session=session
        )

    def _pay(self, payment: SandboxPayment, now: datetime, method: str) -> None:
        state = payment.state
        payment.session["window"] = False
        state["pgTxId"] = f"tsbx{now.astimezone(KST).strftime('%Y%m%d%H%M%S')}{_random(6)}"
        if method == "VIRTUAL_ACCOUNT":
            hours = float(self.config().get("VBANK_HOURS", 168))
            state["method"] = {
                "type": "PaymentMethodVirtualAccount",
                "bank": "KOOKMIN",
                "accountNumber": "T" + _random(13, _DIGITS),
                "accountType": "NORMAL",
                "remitteeName": str(self.config().get("VBANK_HOLDER") or "샌드박스상점"),
                "expiredAt": rfc3339(now + timedelta(hours=hours)),
                "issuedAt": rfc3339(now),
            }
            if payment.session.get("depositAfter") is not None:
                payment.session["depositAt"] = (now + timedelta(seconds=float(payment.session["depositAfter"]))).isoformat()
            self._save(payment, now, "VIRTUAL_ACCOUNT_ISSUED")
            self._notify(payment, now, "Transaction.VirtualAccountIssued")
            return
        kind = V2_METHODS.get(method, V2_METHODS["CARD"])[0]
        state["method"] = {"type": kind}
        if kind == "PaymentMethodCard":
            state["method"].update(
                card={
                    "publisher": "BC",
                    "issuer": "BC",
                    "brand": "LOCAL",
                    "type": "CREDIT",
                    "ownerType": "PERSONAL",
                    "bin": "910020",
                    "name": "BC카드",
                    "number": "910020******5",
                },
                approvalNumber=_random(8, _DIGITS),
                installment={"month": 0, "isInterestFree": False},
                pointUsed=False,
            )
        self._paid(payment, now)

    def _paid(self, payment: SandboxPayment, now: datetime) -> None:
        state = payment.state
        state["amount"]["paid"] = state["amount"]["total"]
        state["paidAt"] = rfc3339(now)
        state["receiptUrl"] = payment.session.get("origin", _site()) + reverse("pgpay_sandbox:portone-v2-receipt", args=[payment.key])
        state.setdefault("cancellations", [])
        state["disputes"] = []
        payment.session.pop("depositAt", None)
        payment.session.pop("depositAfter", None)
        self._save(payment, now, "PAID")
        self._notify(payment, now, "Transaction.Paid")

    def _fail(self, payment: SandboxPayment, now: datetime, reason: str) -> None:
        code, message = V2_WINDOW_ERRORS[reason]
        payment.session["window"] = False
        payment.state["failedAt"] = rfc3339(now)
        payment.state["failure"] = {
            "reason": message,
            "pgCode": "USER_CANCEL" if reason == "closed" else "REJECT_CARD_COMPANY",
            "pgMessage": message,
        }
        self._save(payment, now, "FAILED")
        self._notify(payment, now, "Transaction.Failed")

    def balance(self, payment: SandboxPayment) -> int:
        amount = payment.state["amount"]
        return int(amount["total"]) - int(amount["cancelled"])

    def ledger(self, payment: SandboxPayment) -> Ledger:
        """The payment's money in the lifecycle's terms (an issued account is not cancellable: it is closed)."""
        state = payment.state
        stage = V2_STAGES.get(state["status"], Stage.PENDING)
        method = state.get("method") if isinstance(state.get("method"), dict) else {}
        return Ledger(
            amount=int(state["amount"]["total"]),
            canceled=int(state["amount"]["cancelled"]),
            stage=stage,
            virtual_account=method.get("type") == "PaymentMethodVirtualAccount",
        )

    def describe(self, payment: SandboxPayment) -> dict[str, Any]:
        state = payment.state
        if not isinstance(state.get("amount"), dict):
            return super().describe(payment)
        method = state.get("method") if isinstance(state.get("method"), dict) else {}
        return {"amount": state["amount"].get("total"), "balance": self.balance(payment), "method": method.get("type")}

    def _cancel(
        self,
        payment: SandboxPayment,
        now: datetime,
        *,
        amount: int | None,
        reason: str,
        current: int | None = None,
        trigger: str = "API",
        webhook: bool = True,
        refund_account: Any = None,
    ) -> dict[str, Any]:
        state = payment.state
        plan = self.plan_cancel(
            self.ledger(payment),
            amount,
            expected_balance=current,
            refund_account=refund_account,
            refund_fields=V2_REFUND_FIELDS,
            by_pg=trigger != "API",
        )
        amount, left = plan.amount, plan.left
        cancellation_id = "cancellation-" + str(uuid.uuid4())
        cancellation = {
            "status": "SUCCEEDED",
            "id": cancellation_id,
            "pgCancellationId": "tsbx-cancel-" + _random(10),
            "totalAmount": amount,
            "taxFreeAmount": 0,
            "vatAmount": (amount * 10 + 55) // 110 if state["currency"] == "KRW" else 0,
            "easyPayDiscountAmount": 0,
            "reason": reason,
            "cancelledAt": rfc3339(now),
            "requestedAt": rfc3339(now),
            "receiptUrl": state.get("receiptUrl", "") + f"?cancel={cancellation_id}",
            "trigger": trigger,
        }
        state["cancellations"] = [*(state.get("cancellations") or []), cancellation]
        state["amount"]["cancelled"] = int(state["amount"]["cancelled"]) + amount
        state["cancelledAt"] = cancellation["cancelledAt"]
        state.pop("disputes", None)
        if plan.refunds_by_transfer and isinstance(state.get("method"), dict):
            state["method"]["refundStatus"] = "COMPLETED"
        self._save(payment, now, "CANCELLED" if left == 0 else "PARTIAL_CANCELLED")
        if webhook:
            self._notify(payment, now, "Transaction.Cancelled" if left == 0 else "Transaction.PartialCancelled", cancellation_id)
        return cancellation

    # --- the API -----------------------------------------------------------------------------

    def api_pre_register(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        data = ctx.data if isinstance(ctx.data, dict) else None
        if data is None:
            raise ApiError("INVALID_REQUEST")
        store_id = self._store(ctx, data.get("storeId"))
        total = data.get("totalAmount")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total <= 0):
            raise ApiError("INVALID_REQUEST", "totalAmount는 양의 정수여야 합니다.")
        currency = data.get("currency")
        if currency is not None and (not isinstance(currency, str) or currency.removeprefix("CURRENCY_") not in ("KRW", "USD", "JPY")):
            raise ApiError("INVALID_REQUEST", "currency가 올바르지 않습니다.")
        payment = self._payment(payment_id, store_id)
        if payment is not None and payment.state["status"] not in ("READY", "FAILED"):
            raise ApiError("ALREADY_PAID")
        state = {
            "storeId": store_id,
            "totalAmount": total,
            "taxFreeAmount": data.get("taxFreeAmount"),
            "currency": currency.removeprefix("CURRENCY_") if currency else None,
        }
        row = self._locked(payment_id, V2_PREPARE_PG)
        # unconfirmed: a second pre-registration replaces the first.
        if row is None:
            SandboxPayment.objects.create(pg=V2_PREPARE_PG, key=payment_id, order_id=payment_id, status="prepared", state=state, session={})
        else:
            row.state = state
            row.save(update_fields=["state", "updated_at"])
        return Answer.json(200, {})

    def api_payment(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        store_id = self._store(ctx, ctx.request.GET.get("storeId"))
        payment = self._payment(payment_id, store_id)
        if payment is None:
            raise ApiError("PAYMENT_NOT_FOUND")
        return Answer.json(200, copy.deepcopy(payment.state))

    def api_cancel(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        data = ctx.data if isinstance(ctx.data, dict) else None
        if data is None:
            raise ApiError("INVALID_REQUEST")
        store_id = self._store(ctx, data.get("storeId"))
        reason = data.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ApiError("INVALID_REQUEST", "reason은 필수 값입니다.")
        values = {}
        for name in ("amount", "currentCancellableAmount"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ApiError("INVALID_REQUEST", f"{name}는 정수여야 합니다.")
            values[name] = value
        payment = self._payment(payment_id, store_id)
        if payment is None:
            raise ApiError("PAYMENT_NOT_FOUND")
        cancellation = self._cancel(
            payment,
            ctx.now,
            amount=values["amount"],
            reason=reason[:200],
            current=values["currentCancellableAmount"],
            webhook=not truthy(data.get("skipWebhook")),
            refund_account=data.get("refundAccount"),
        )
        return Answer.json(200, {"cancellation": cancellation})

    def api_close_virtual_account(self, ctx: ApiContext, fault: faults.Fault | None = None, payment_id: str = "") -> Answer:
        """``POST /payments/{paymentId}/virtual-account/close`` (가상계좌 말소, V2 spec): ``{closedAt}``.

        409 ``PAYMENT_NOT_WAITING_FOR_DEPOSIT`` unless the payment is an issued
        account (spec). Afterwards the payment reads ``CANCELLED`` with nothing
        cancelled of its amount (unconfirmed: the spec says only that it is closed).
        """
        data = ctx.data if isinstance(ctx.data, dict) else {}
        store_id = self._store(ctx, ctx.request.GET.get("storeId") or data.get("storeId"))
        payment = self._payment(payment_id, store_id)
        if payment is None:
            raise ApiError("PAYMENT_NOT_FOUND")
        if payment.state["status"] != "VIRTUAL_ACCOUNT_ISSUED":
            raise ApiError("PAYMENT_NOT_WAITING_FOR_DEPOSIT")
        payment.state["cancelledAt"] = rfc3339(ctx.now)
        payment.session.pop("depositAt", None)
        self._save(payment, ctx.now, "CANCELLED")
        return Answer.json(200, {"closedAt": rfc3339(ctx.now)})

    # --- views ---------------------------------------------------------------------------------

    def _refuse(self, request: HttpRequest, code: str) -> HttpResponse:
        guard()
        return self.error_answer(ApiContext(request=request, now=clock.now()), ApiError(code)).response()

    def view_close(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "cancel", self.api_close_virtual_account, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_pre_register(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "prepare", self.api_pre_register, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_payment(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "GET":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "lookup", self.api_payment, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_cancel(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        if request.method != "POST":
            return self._refuse(request, "METHOD_NOT_ALLOWED")
        return self.serve(request, "cancel", self.api_cancel, match=lambda ctx: [payment_id], payment_id=payment_id)

    def view_unknown(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        return self._refuse(request, "NOT_FOUND")

    def view_sdk(self, request: HttpRequest) -> HttpResponse:
        """The stand-in for ``https://cdn.portone.io/v2/browser-sdk.js``."""
        return self._view_script(request, "pgpay_sandbox/portone/browser-sdk.js", "pgpay_sandbox:portone-v2-checkout")

    def _v2_failure(self, payment_id: Any, reason: str, tx_id: str | None = None) -> dict[str, Any]:
        code, message = V2_WINDOW_ERRORS[reason]
        return {
            "transactionType": "PAYMENT",
            "paymentId": payment_id if isinstance(payment_id, str) else None,
            "txId": tx_id,
            "code": code,
            "message": message,
        }

    def _redirect_url(self, session: dict[str, Any], result: dict[str, Any]) -> str:
        url = session.get("redirectUrl") or ""
        if not url:
            return ""
        query = {"paymentId": result.get("paymentId") or "", "transactionType": "PAYMENT", "txId": result.get("txId")}
        if result.get("code"):
            query.update(code=result["code"], message=result["message"])
        return with_query(url, query)

    def view_checkout(self, request: HttpRequest) -> HttpResponse:
        """Where ``PortOne.requestPayment`` posts its request: checks it and opens the window."""
        guard()
        if request.method != "POST":
            return self._window_error(request, "INVALID_REQUEST", "POST only.", status=405)
        payload = self._checkout_payload(request)
        if payload is None or not isinstance(payload.get("params"), dict):
            return self._window_error(request, "INVALID_REQUEST", "payload is not JSON.")
        req = dict(payload["params"])
        mode = "redirect" if payload.get("mode") == "redirect" else "iframe"
        session = {
            "mode": mode,
            "redirectUrl": req.get("redirectUrl") if _is_http_url(req.get("redirectUrl")) else "",
            "userAgent": str(payload.get("userAgent") or request.headers.get("User-Agent", ""))[:300],
            "url": str(payload.get("url") or "")[:500],
            "ip": request.META.get("REMOTE_ADDR", "127.0.0.1"),
        }
        payment_id = req.get("paymentId")

        def refuse(reason: str) -> HttpResponse:
            result = self._v2_failure(payment_id, reason)
            return self._finish_window(request, mode, result, self._redirect_url(session, result))

        store_id = req.get("storeId")
        if not isinstance(store_id, str) or store_id not in self._list("STORE_IDS"):
            return refuse("store")
        total = req.get("totalAmount")
        currency = str(req.get("currency") or "").removeprefix("CURRENCY_")
        if (
            not isinstance(payment_id, str)
            or not payment_id
            or len(payment_id) > 200
            or "/" in payment_id
            or not req.get("channelKey")
            or not isinstance(req.get("orderName"), str)
            or isinstance(total, bool)
            or not isinstance(total, int)
            or total <= 0
            or currency not in ("KRW", "USD", "JPY")
            or (mode == "redirect" and not session["redirectUrl"])
        ):
            return refuse("invalid")
        now = clock.now()
        origin = f"{request.scheme}://{request.get_host()}"
        with transaction.atomic():
            prepared = self._locked(payment_id, V2_PREPARE_PG)
            if prepared is not None:
                allowed = prepared.session.pop("allowOtherAmount", False)
                if allowed:
                    prepared.save(update_fields=["session", "updated_at"])
                held = prepared.state
                if not allowed and (
                    (held.get("totalAmount") is not None and held["totalAmount"] != total)
                    or (held.get("currency") and held["currency"] != currency)
                ):
                    return refuse("amount_mismatch")
            existing = self._payment(payment_id, store_id)
            if existing is None and SandboxPayment.objects.filter(pg=self.name, key=payment_id).exists():
                return refuse("invalid")
            if existing is not None and existing.state["status"] not in ("READY", "FAILED"):
                return refuse("already_paid")
            notice = req.get("noticeUrls")
            session["noticeUrls"] = [u for u in (notice if isinstance(notice, list) else []) if isinstance(u, str) and u][:5]
            payment = self._open(
                {**req, "_currency": currency}, store_id=store_id, now=now, origin=origin, session=session, existing=existing
            )
        return HttpResponseRedirect(reverse("pgpay_sandbox:portone-v2-pay", args=[payment.key]), status=303)

    def view_pay(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        guard()
        if request.method == "POST":
            now = clock.now()
            with transaction.atomic():
                payment = self._locked(payment_id)
                if payment is None:
                    return self._window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
                if not _same(request.POST.get("window_token", ""), str(payment.session.get("window_token", ""))):
                    return self._window_error(request, "INVALID_REQUEST", "The window token is missing or wrong.", status=403)
                if not payment.session.get("window"):
                    return self._window(request, payment, status=409)
                action = request.POST.get("action", "")
                tx_id = payment.state["transactionId"]
                if action in ("decline", "close"):
                    reason = "declined" if action == "decline" else "closed"
                    self._fail(payment, now, reason)
                    result = self._v2_failure(payment.key, reason, tx_id)
                elif action in ("pay", "vbank"):
                    requested = payment.session.get("payMethod") or "CARD"
                    method = "VIRTUAL_ACCOUNT" if action == "vbank" else ("CARD" if requested == "VIRTUAL_ACCOUNT" else requested)
                    if method == "VIRTUAL_ACCOUNT":
                        payment.session["depositAfter"] = self._deposit_choice(request)
                    fault = request.POST.get("lookup_fault", "")
                    if fault in dict(LOOKUP_FAULT_CHOICES) and fault:
                        faults.arm(self.name, "lookup", fault, match=payment.key, **({"delay": 35} if fault.startswith("timeout") else {}))
                    self._pay(payment, now, method)
                    result = {"transactionType": "PAYMENT", "paymentId": payment.key, "txId": tx_id}
                else:
                    return self._window(request, payment, status=400)
            return self._finish_window(request, payment.session.get("mode", "iframe"), result, self._redirect_url(payment.session, result))
        payment = SandboxPayment.objects.filter(pg=self.name, key=payment_id).first()
        if payment is None:
            return self._window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
        return self._window(request, payment)

    def _window(self, request: HttpRequest, payment: SandboxPayment, *, status: int = 200) -> HttpResponse:
        state = payment.state
        requested = payment.session.get("payMethod") or "CARD"
        total = Decimal(state["amount"]["total"])
        context = {
            "title": self.title,
            "payment": payment,
            "order_name": state.get("orderName") or "",
            "order_id": payment.key,
            "payment_key": state["transactionId"],
            "amount_display": _format(total),
            "currency": state["currency"],
            "method": requested,
            "method_label": V2_METHODS.get(requested, ("", requested))[1],
            "buyer": (state.get("customer") or {}).get("name", ""),
            "merchant": state["storeId"],
            "open": bool(payment.session.get("window")),
            "status": state["status"],
            "vbank_only": requested == "VIRTUAL_ACCOUNT",
            "window_token": payment.session.get("window_token", ""),
            "lookup_faults": LOOKUP_FAULT_CHOICES,
            "action_url": reverse("pgpay_sandbox:portone-v2-pay", args=[payment.key]),
            "sandbox_flag": state["channel"]["type"] == "TEST",
        }
        return render(request, "pgpay_sandbox/portone/pay.html", context, status=status)

    def view_receipt(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        guard()
        payment = SandboxPayment.objects.filter(pg=self.name, key=payment_id).first()
        if payment is None:
            return self._window_error(request, "NOT_FOUND", "Unknown payment.", status=404)
        state = payment.state
        cancels = [
            {"cancelled_at": c.get("cancelledAt"), "amount": c["totalAmount"], "reason": c.get("reason")}
            for c in state.get("cancellations") or ()
        ]
        context = {
            "title": self.title,
            "state": state,
            "cancels": cancels,
            "status": state["status"],
            "amount": state["amount"]["total"],
            "currency": state["currency"],
            "name": state.get("orderName"),
            "order_id": payment.key,
        }
        return render(request, "pgpay_sandbox/portone/receipt.html", context)

    def urlpatterns(self) -> list:
        api = csrf_exempt
        return [
            path("payments/<str:payment_id>/pre-register", api(self.view_pre_register), name="portone-v2-pre-register"),
            path("payments/<str:payment_id>/cancel", api(self.view_cancel), name="portone-v2-cancel"),
            path("payments/<str:payment_id>/virtual-account/close", api(self.view_close), name="portone-v2-close"),
            path("payments/<str:payment_id>", api(self.view_payment), name="portone-v2-payment"),
            re_path(
                r"^(?P<rest>(?:payments|login|token|billing-keys|payment-schedules)(?:/.*)?)$",
                api(self.view_unknown),
                name="portone-v2-unknown",
            ),
            path("v2/browser-sdk.js", self.view_sdk, name="portone-v2-sdk"),
            path("v2/checkout", framed(self.view_checkout), name="portone-v2-checkout"),
            path("v2/pay/<str:payment_id>", framed(self.view_pay), name="portone-v2-pay"),
            path("v2/receipt/<str:payment_id>", self.view_receipt, name="portone-v2-receipt"),
        ]

    # --- actions ---------------------------------------------------------------------------------

    def actions(self) -> dict[str, Any]:
        return {
            "pay": self.act_pay,
            "deposit": self.act_deposit,
            "cancel": self.act_cancel,
            "allow-other-amount": self.act_allow_other_amount,
            "payment": self.act_payment,
        }

    def act_pay(
        self,
        payment_id: str,
        total_amount: int,
        pay_method: str = "CARD",
        outcome: str = "pay",
        order_name: str = "Sandbox order",
        currency: str = "KRW",
        store_id: str | None = None,
        notice_url: str | None = None,
        origin: str = "",
    ) -> dict[str, Any]:
        """A buyer goes through the V2 window without a browser; returns what ``requestPayment`` resolves to."""
        stores = self._list("STORE_IDS")
        store_id = store_id or (stores[0] if stores else "store-sandbox")
        now = clock.now()
        with transaction.atomic():
            prepared = self._locked(payment_id, V2_PREPARE_PG)
            if prepared is not None and prepared.state.get("totalAmount") not in (None, total_amount):
                if not prepared.session.pop("allowOtherAmount", False):
                    return self._v2_failure(payment_id, "amount_mismatch")
                prepared.save(update_fields=["session", "updated_at"])
            existing = self._payment(payment_id, store_id)
            if existing is not None and existing.state["status"] not in ("READY", "FAILED"):
                return self._v2_failure(payment_id, "already_paid")
            req = {
                "paymentId": payment_id,
                "totalAmount": int(total_amount),
                "orderName": order_name,
                "channelKey": "channel-key-sandbox",
                "payMethod": pay_method,
                "_currency": currency,
            }
            session = {"mode": "iframe", "noticeUrls": [notice_url] if notice_url else []}
            payment = self._open(
                req, store_id=store_id, now=now, origin=(origin or _site()).rstrip("/"), session=session, existing=existing
            )
            tx_id = payment.state["transactionId"]
            if outcome in ("decline", "close"):
                reason = "declined" if outcome == "decline" else "closed"
                self._fail(payment, now, reason)
                return self._v2_failure(payment_id, reason, tx_id)
            self._pay(payment, now, "VIRTUAL_ACCOUNT" if outcome == "vbank" else pay_method)
        return {"transactionType": "PAYMENT", "paymentId": payment_id, "txId": tx_id}

    def _act(self, payment_id: str, change) -> dict[str, Any]:
        now = clock.now()
        with transaction.atomic():
            payment = self._locked(payment_id)
            if payment is None:
                raise ApiError("PAYMENT_NOT_FOUND")
            change(payment, now)
        return copy.deepcopy(payment.state)

    def act_deposit(self, payment_id: str) -> dict[str, Any]:
        """The money for a virtual account arrives: VIRTUAL_ACCOUNT_ISSUED -> PAID (``Transaction.Paid``)."""

        def change(payment, now):
            if payment.state["status"] != "VIRTUAL_ACCOUNT_ISSUED":
                raise ApiError("PAYMENT_NOT_PAID", f"{payment.key} is not a virtual account waiting for its deposit")
            self._paid(payment, now)

        return self._act(payment_id, change)

    def act_cancel(self, payment_id: str, amount: Any = None, reason: str = "관리자 콘솔 취소") -> dict[str, Any]:
        """A cancel made in PortOne's console, full or partial."""
        value = None if amount in (None, "") else number(amount)
        if amount not in (None, "") and (value is None or value <= 0 or value != value.to_integral_value()):
            raise ApiError("INVALID_REQUEST", "amount must be a positive whole number")
        return self._act(
            payment_id,
            lambda payment, now: self._cancel(payment, now, amount=None if value is None else int(value), reason=reason, trigger="CONSOLE"),
        )

    def act_payment(self, payment_id: str) -> dict[str, Any]:
        return self._act(payment_id, lambda payment, now: None)

    def act_allow_other_amount(self, payment_id: str) -> dict[str, Any]:
        """A developer fault: the next window of ``payment_id`` opens with whatever amount the browser sends."""
        with transaction.atomic():
            row = self._locked(payment_id, V2_PREPARE_PG)
            if row is None:
                raise ApiError("PAYMENT_NOT_FOUND", "nothing is pre-registered for this paymentId")
            row.session["allowOtherAmount"] = True
            row.save(update_fields=["session", "updated_at"])
        return dict(row.state)

    def apply_due_to(self, key: str, now: datetime) -> bool:
        payment = self._locked(key)
        if payment is None or payment.status != "VIRTUAL_ACCOUNT_ISSUED" or not payment.session.get("depositAt"):
            return False
        if parse_datetime(payment.session["depositAt"]) > now:
            return False
        self._paid(payment, now)
        return True


# --- the Python API (what tests call) -------------------------------------------------------------


def _v1() -> PortOneSandbox:
    from .base import emulator

    return emulator("portone")


def _v2() -> PortOneV2Sandbox:
    from .base import emulator

    return emulator("portone-v2")


def pay(merchant_uid: str, amount: Any, **kwargs) -> dict[str, Any]:
    """A buyer goes through ``IMP.request_pay``'s window (no browser): what the callback gets (``imp_uid`` …)."""
    return _v1().act_pay(merchant_uid, amount, **kwargs)


def deposit(imp_uid: str) -> dict[str, Any]:
    """The money for a V1 virtual account arrives."""
    return _v1().act_deposit(imp_uid)


def cancel_in_console(imp_uid: str, amount: Any = None, reason: str = "관리자 콘솔 취소") -> dict[str, Any]:
    """A cancel made in PortOne's console (full, or ``amount``)."""
    return _v1().act_cancel(imp_uid, amount, reason)


def payment_state(imp_uid: str) -> dict[str, Any]:
    """The V1 Payment object of ``imp_uid``."""
    return _v1().act_payment(imp_uid)


def revoke_tokens() -> int:
    """Every issued V1 access token stops working (the next call with one is a 401)."""
    return _v1().act_revoke_tokens()


def allow_other_amount(merchant_uid: str) -> dict[str, Any]:
    """The next window of ``merchant_uid`` opens with whatever amount the browser sends (seed 003's tampering)."""
    return _v1().act_allow_other_amount(merchant_uid)


def token_requests() -> int:
    """How many V1 ``users/getToken`` calls the sandbox answered with a token."""
    return _v1().token_requests()


def v2_pay(payment_id: str, total_amount: int, **kwargs) -> dict[str, Any]:
    """A buyer goes through ``PortOne.requestPayment``'s window (no browser)."""
    return _v2().act_pay(payment_id, total_amount, **kwargs)


def v2_deposit(payment_id: str) -> dict[str, Any]:
    """The money for a V2 virtual account arrives."""
    return _v2().act_deposit(payment_id)


def v2_cancel_in_console(payment_id: str, amount: Any = None, reason: str = "관리자 콘솔 취소") -> dict[str, Any]:
    """A cancel of a V2 payment made in PortOne's console."""
    return _v2().act_cancel(payment_id, amount, reason)


def v2_payment_state(payment_id: str) -> dict[str, Any]:
    """The V2 Payment object of ``payment_id``."""
    return _v2().act_payment(payment_id)


def v2_allow_other_amount(payment_id: str) -> dict[str, Any]:
    """The next V2 window of ``payment_id`` opens with whatever amount the browser sends."""
    return _v2().act_allow_other_amount(payment_id)
