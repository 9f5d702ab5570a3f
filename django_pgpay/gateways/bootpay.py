"""Bootpay, PG REST API v2, with the JavaScript SDK 5.x and separate server approval.

Wire contract (``docs/bootpay.rst`` says what each call sends; sources: the
official ``bootpay-backend`` client 2.9.0, Bootpay's ``bootpay-mcp`` server
examples and troubleshooting guide, developers.bootpay.co.kr):

* Every call carries ``Authorization: Basic base64("{CLIENT_KEY}:{SECRET_KEY}")``,
  or (legacy keys) ``Bearer <access_token>`` from ``POST /v2/request/token``
  ``{application_id, private_key}``, cached and renewed before it expires.
* The browser opens ``Bootpay.requestPayment({... extra: {separately_confirmed:
  true}})``; on its ``confirm`` event the buyer comes back to our return URL
  with ``receipt_id`` and ``order_id`` (receipt status 2).
* ``POST /v2/confirm`` ``{receipt_id}`` approves it; ``GET
  /v2/receipt/{receipt_id}`` looks a payment up (a bare Receipt object).
* ``POST /v2/cancel`` ``{receipt_id, cancel_id, cancel_username,
  cancel_message[, cancel_price]}`` gives money back, the whole remainder
  without ``cancel_price``. ``cancel_id`` is the ledger row's key: Bootpay
  refuses a second cancel with the same id.
* Errors are ``{"error_code", "message"}``; HTTP statuses and most codes are
  not published, so a refused confirm or cancel is followed by a lookup and
  the receipt decides (an "already cancelled" answer becomes
  :class:`~django_pgpay.exceptions.AlreadyCanceled`).
* Webhooks are not signed: a delivery is trusted only through a lookup, and
  answered ``200 {"success": true}`` (anything else is retried).

There is no lookup by our order number (``supports_lookup_by_order`` is False):
the receipt id reaches us from the browser, the confirm call or a webhook.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from django.core import checks

from ..exceptions import (
    AlreadyCanceled,
    AuthenticationFailed,
    CancelRefused,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    RefundAccountRequired,
    UnsupportedFeature,
    WebhookVerificationError,
)
from ..money import normalize_currency, to_json_number
from .bootpay_receipt import OTHER_PRODUCT_STATUSES, STATUS_APPROVING, STATUSES, BootpayReceipts, receipt_state
from .http import HttpReply
from .pipeline import HttpGateway
from .results import (
    CancelRequest,
    CancelResult,
    CheckoutResult,
    CheckoutUrls,
    ConfirmRequest,
    OrderSnapshot,
    ParsedWebhook,
    PaymentResult,
    PaymentState,
    ReturnParams,
)
from .wire import canonical_amount, digest

#: Bootpay ``error_code`` -> the exception it means. Bootpay publishes no full
#: list; codes not here fall back on the HTTP status, and a refused confirm or
#: cancel is checked against the receipt (see :meth:`BootpayGateway.confirm`
#: and :meth:`BootpayGateway.cancel`).
ERRORS: dict[str, type[GatewayError]] = {
    # Observed: {"error_code": "RC_NOT_FOUND", "message": "영수증 정보를 찾지 못했습니다."}
    "RC_NOT_FOUND": NotFound,
    # The PG refused the approval; its reason is in pg_error_code (bootpay-mcp troubleshooting).
    "RC_CONFIRM_FAILED": PaymentDeclined,
    "RC_REQUEST_FAILED": PaymentDeclined,
    # Our keys (bootpay-mcp troubleshooting: error codes).
    "TOKEN_KEY_INVALID": AuthenticationFailed,
    "TOKEN_EXPIRED": AuthenticationFailed,
    "APP_SK_NOT_MATCHED": AuthenticationFailed,
    "APP_KEY_NOT_FOUND": AuthenticationFailed,
    "APP_CLIENT_KEY_NOT_FOUND": AuthenticationFailed,
    "APPLICATION_ID_INVALID": AuthenticationFailed,
    "-100": AuthenticationFailed,
    "-200": AuthenticationFailed,
    # Cancels (bootpay-mcp troubleshooting: 3708 CANCEL_ALREADY_DONE, 3710 CANCEL_PRICE_OVER).
    "CANCEL_ALREADY_DONE": AlreadyCanceled,
    "3708": AlreadyCanceled,
    "CANCEL_PRICE_OVER": CancelRefused,
    "3710": CancelRefused,
}
#: Codes that say our access token is no longer good: fetch a new one and send again (legacy keys).
TOKEN_ERRORS = frozenset({"TOKEN_KEY_INVALID", "TOKEN_EXPIRED", "-200"})

#: Bootpay's webhook senders (developers.bootpay.co.kr, webhook settings): ``WEBHOOK_ALLOWED_IPS = True``.
WEBHOOK_NETWORKS = ("223.130.82.0/24",)
#: ``webhook_type`` values of payments (JS SDK 5.x); others are acknowledged and ignored.
PAYMENT_WEBHOOK_TYPES = frozenset({"PAYMENT_COMPLETED", "PAYMENT_CANCELLED", "PAYMENT_PARTIAL_CANCELLED", "PAYMENT_VIRTUAL_ACCOUNT_ISSUED"})
#: Browser ``open_type`` values (``OPEN_TYPE`` option).
OPEN_TYPES = ("iframe", "popup", "redirect")
#: ``pg_data`` key that held a refund account before :class:`~django_pgpay.gateways.results.RefundAccount` (deprecated).
PG_DATA_REFUND = "bootpay_refund"

#: Seconds before the access token's end at which a new one is fetched (Bootpay hands out the
#: same token for 25 of its 30 minutes).
TOKEN_MARGIN = 300
DEFAULT_TOKEN_LIFETIME = 1800


class BootpayGateway(BootpayReceipts, HttpGateway):
    """Bootpay (``https://api.bootpay.co.kr/v2``), REST API v2.

    OPTIONS (either key pair):

    ``CLIENT_KEY`` and ``SECRET_KEY``
        The current keys: ``Authorization: Basic base64("CLIENT_KEY:SECRET_KEY")``
        on every call. ``CLIENT_KEY`` is also given to the browser.
    ``APPLICATION_ID`` and ``PRIVATE_KEY``
        Legacy REST keys: an access token from ``POST /v2/request/token``,
        cached on this instance and renewed before it expires. The browser then
        needs ``CLIENT_KEY`` or ``WEB_APPLICATION_ID`` (the JavaScript
        application id, which is not the REST one).
    ``API_BASE``
        Default ``https://api.bootpay.co.kr/v2``; the sandbox points it at itself.
    ``JS_SDK_URL``
        Default ``https://js.bootpay.co.kr/bootpay-5.1.4.min.js``.
    ``PG``, ``PAY_METHOD``
        ``pg``/``method`` of ``requestPayment`` (e.g. ``"nicepay"``, ``"card"``);
        leave both out for Bootpay's unified window, where the buyer chooses.
        ``PAY_METHOD`` was ``METHOD`` (still read, with a system-check warning).
    ``OPEN_TYPE``
        ``"iframe"``, ``"popup"`` or ``"redirect"`` (Bootpay then sends the buyer
        to our return URL itself); default: Bootpay's (iframe).
    ``WEBHOOK_ALLOWED_IPS``
        Off by default. ``True`` accepts webhooks only from Bootpay's
        ``223.130.82.0/24``; or a list of networks. Needs a correct
        ``REMOTE_ADDR`` behind proxies (see the docs).
    ``TIMEOUT``
        Seconds, or ``(connect, read)``; default ``(3.05, 30)``.
    """

    pg_name = "Bootpay"
    supports_partial_cancel = True
    #: ``cancel_id`` on cancels (confirm needs none: Bootpay approves a receipt once, in status 2).
    supports_idempotency_key = True
    signs_webhooks = False
    supports_lookup_by_order = False
    supports_virtual_account = True
    requires_confirm_call = True
    required_options: tuple[str, ...] = ()  # one of two key pairs: see check()
    option_names = ("CLIENT_KEY", "SECRET_KEY", "APPLICATION_ID", "PRIVATE_KEY", "WEB_APPLICATION_ID", "PG", "PAY_METHOD", "OPEN_TYPE")
    webhook_ack = (200, "application/json", b'{"success": true}')

    ERRORS = ERRORS
    WEBHOOK_NETWORKS = WEBHOOK_NETWORKS
    TOKEN_MARGIN = TOKEN_MARGIN
    RENAMED_OPTIONS = {"METHOD": "PAY_METHOD"}

    DEFAULT_API_BASE = "https://api.bootpay.co.kr/v2"
    DEFAULT_JS_SDK_URL = "https://js.bootpay.co.kr/bootpay-5.1.4.min.js"

    # --- plumbing ---------------------------------------------------------------

    def _has(self, *names: str) -> bool:
        return all(self._options.get(name) not in (None, "") for name in names)

    @property
    def uses_access_token(self) -> bool:
        """True with the legacy ``APPLICATION_ID``/``PRIVATE_KEY`` pair (and no ``SECRET_KEY``)."""
        return not self._has("SECRET_KEY") and self._has("APPLICATION_ID", "PRIVATE_KEY")

    def auth_headers(self, verb: str, token: str | None, idempotency_key: str = "") -> dict[str, str]:
        """``Bearer`` with the legacy token, else ``Basic base64(CLIENT_KEY:SECRET_KEY)``."""
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        pair = f"{self.option('CLIENT_KEY')}:{self.option('SECRET_KEY')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}

    def access_token(self, *, renew: bool = False) -> str:
        """The legacy access token (shared by threads, renewed before it expires)."""
        if renew:
            self.tokens.clear()
        return self.tokens.get()

    def fetch_token(self) -> tuple[str, float]:
        """``POST /v2/request/token``; a refusal of the keys is :class:`AuthenticationFailed`."""
        body = {"application_id": str(self.option("APPLICATION_ID")), "private_key": str(self.option("PRIVATE_KEY"))}
        reply = self.http.request("POST", "/request/token", json_body=body)
        data = reply.data if isinstance(reply.data, dict) else None
        token = str((data or {}).get("access_token") or "")
        if not reply.ok or data is None or data.get("error_code") or not token:
            if data is None or reply.status >= 500:
                raise GatewayUnavailable(
                    f"{self.alias}: the token request answered HTTP {reply.status}",
                    gateway=self.alias,
                    code="TOKEN_UNAVAILABLE",
                    sent=False,
                    http_status=reply.status,
                )
            raise AuthenticationFailed(
                str(data.get("message") or "") or f"{self.alias}: Bootpay refused APPLICATION_ID/PRIVATE_KEY",
                gateway=self.alias,
                code=str(data.get("error_code") or "TOKEN_REFUSED"),
                http_status=reply.status,
                response=data,
            )
        return token, _seconds(data.get("expire_in"))

    def token_refused(self, reply: HttpReply) -> bool:
        code = str(reply.data.get("error_code") or "") if isinstance(reply.data, dict) else ""
        return reply.status == 401 or code in TOKEN_ERRORS

    def failed(self, reply: HttpReply) -> bool:
        """Not 2xx, or a 2xx body that is Bootpay's error envelope (the official client never checks the status)."""
        return not reply.ok or (isinstance(reply.data, dict) and bool(reply.data.get("error_code")))

    def error_fields(self, reply: HttpReply) -> tuple[str, str]:
        """``error_code`` and ``message`` (with the PG's ``pg_error_code`` when it gives one)."""
        data = reply.data if isinstance(reply.data, dict) else {}
        message, pg_code = str(data.get("message") or ""), str(data.get("pg_error_code") or "")
        return str(data.get("error_code") or ""), f"{message} ({pg_code})" if message and pg_code else message

    def error_class(self, reply: HttpReply, code: str, message: str, verb: str) -> type[GatewayError]:
        """``ERRORS``, then the status; a refused cancel that speaks of the refund account needs one (bootpay.md §4)."""
        cls = super().error_class(reply, code, message, verb)
        if verb == "cancel" and self.for_verb(cls, verb) is CancelRefused and ("refund" in message or "환불" in message):
            return RefundAccountRequired
        return cls

    # --- checkout and return ----------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """Parameters of ``Bootpay.requestPayment({...})`` with ``extra.separately_confirmed = true``.

        ``params["request"]`` goes to the SDK as is; ``return_url`` and
        ``fail_url`` are where the template sends the buyer on the SDK's events.
        """
        if normalize_currency(order.currency) != "KRW":
            raise UnsupportedFeature(self.pg_name, f"payments in {order.currency}")
        if self._has("CLIENT_KEY"):
            key = {"client_key": str(self.option("CLIENT_KEY"))}
        else:
            key = {"application_id": str(self.option("WEB_APPLICATION_ID"))}
        extra: dict[str, Any] = {"separately_confirmed": True}
        open_type = self._options.get("OPEN_TYPE")
        if open_type:
            extra["open_type"] = str(open_type)
            if open_type == "redirect":
                extra["redirect_url"] = urls.success_url
        request: dict[str, Any] = {
            **key,
            "price": to_json_number(order.amount, "KRW"),
            "order_name": order.order_name[:100],
            "order_id": order.order_number,
        }
        for option, name in (("PG", "pg"), ("PAY_METHOD", "method")):
            if self._options.get(option):
                request[name] = str(self._options[option])
        items = _items(order)
        if items:
            request["items"] = items
        user = {
            name: value
            for name, value in (
                ("username", order.buyer_name),
                ("email", order.buyer_email),
                ("phone", "".join(c for c in order.buyer_phone if c.isdigit())),
            )
            if value
        }
        if user:
            request["user"] = user
        request["extra"] = extra
        return CheckoutResult(
            kind="widget",
            script_url=self.script_url,
            template_name="django_pgpay/checkout/bootpay.html",
            params={"request": request, "return_url": urls.success_url, "fail_url": urls.fail_url, "attempt_url": urls.attempt_url},
        )

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        """``?event=confirm&receipt_id=&order_id=`` (our template, or Bootpay's redirect mode).

        ``event=cancel`` (the buyer closed the window) and ``event=error`` come
        back as failures; ``done`` and ``issued`` (PGs without separate
        approval) are confirmed like ``confirm``: the confirm call is then
        refused and the receipt looked up. Bootpay sends no amount we could
        check here; the confirmed receipt's price is checked against the order.
        """
        event = str(params.get("event") or "")
        receipt_id = str(params.get("receipt_id") or "")
        order_id = str(params.get("order_id") or "")
        if event in ("cancel", "error"):
            return ReturnParams(
                payment_id=receipt_id[:200],
                order_number=order_id[:64],
                error_code="PAY_PROCESS_CANCELED" if event == "cancel" else "PAY_PROCESS_ABORTED",
                error_message=str(params.get("message") or "")[:500],
            )
        if event not in ("", "confirm", "done", "issued"):
            raise InvalidRequest(f"unknown event {event[:20]!r}", gateway=self.alias, code="INVALID_RETURN")
        if not receipt_id or not order_id:
            raise InvalidRequest("receipt_id and order_id are required", gateway=self.alias, code="INVALID_RETURN")
        return ReturnParams(payment_id=receipt_id, order_number=order_id)

    # --- money-moving calls -------------------------------------------------------

    def confirm(self, request: ConfirmRequest) -> PaymentResult:
        """``POST /v2/confirm {receipt_id}``, then the receipt as Bootpay reports it.

        The receipt is fetched (``GET /v2/receipt/{receipt_id}``) when the
        confirm's reply is not a settled receipt of this payment, and when
        Bootpay refuses the confirm: a receipt that is already approved (a
        reload, a PG without separate approval) is reported as it is, one that
        is still being approved is an unknown outcome, and only a receipt that
        was not approved makes the refusal stand. Nothing is judged here: the
        operations compare price, currency and order id with the order.
        """
        reply = self.send("confirm", "POST", "/confirm", json_body={"receipt_id": request.payment_id})
        if self.failed(reply):
            error = self.error(reply, "confirm")
            if error.outcome_unknown or isinstance(error, (AuthenticationFailed, NotFound)):
                raise error
            current = self._lookup_after_confirm(request, error.code)
            if current.state.is_paid or current.state == PaymentState.WAITING_FOR_DEPOSIT:
                return current
            if current.raw.get("status") == STATUS_APPROVING:
                raise GatewayUnavailable(
                    f"{self.alias}: Bootpay is still approving {request.payment_id}", gateway=self.alias, code="APPROVING"
                ) from error
            if current.state == PaymentState.FAILED and not isinstance(error, PaymentDeclined):
                raise PaymentDeclined(error.message, gateway=self.alias, code=error.code, response=error.response) from error
            raise error
        result = None
        try:
            result = self.payment(self.json_object(reply, "confirm"))
        except GatewayUnavailable:
            result = None  # not a receipt we can read: fetch it
        if (
            result is None
            or result.payment_id != request.payment_id
            or result.state
            in (
                PaymentState.PENDING,
                PaymentState.AUTHENTICATED,
            )
        ):
            result = self._lookup_after_confirm(request, "NOT_SETTLED")
        return result

    def _lookup_after_confirm(self, request: ConfirmRequest, code: str) -> PaymentResult:
        """The receipt after a confirm was sent; a lookup that fails leaves the confirm's outcome unknown."""
        try:
            return self.lookup(payment_id=request.payment_id)
        except GatewayError as exc:
            raise GatewayUnavailable(
                f"{self.alias}: confirm of {request.payment_id} answered {code}; the receipt could not be read ({exc.code})",
                gateway=self.alias,
                code=code,
            ) from exc

    def cancel(self, request: CancelRequest) -> CancelResult:
        """``POST /v2/cancel``; ``cancel_id`` is the ledger row's idempotency key.

        Bootpay refuses a second cancel with a ``cancel_id`` it has applied
        (developers.bootpay.ai: ``cancel_id``, 가맹점 취소 고유 ID, 중복 방지; it does
        not replay the first answer). So a refused cancel is checked against the
        receipt: when the refusal names the ``cancel_id`` and the receipt shows
        exactly this cancel given back since we asked (a retry after a lost
        answer), the cancel is done and reported as ours; when the receipt shows
        money given back that we did not know of (its dashboard, the PG's
        nightly cancel of test payments, or a refusal we cannot attribute),
        :class:`AlreadyCanceled` is raised and the operations apply the receipt
        (money right either way); otherwise the refusal stands.
        """
        body: dict[str, Any] = {
            "receipt_id": request.payment_id,
            "cancel_id": request.idempotency_key,
            "cancel_username": (request.requested_by or "django-pgpay")[:100],
            "cancel_message": (request.reason or "cancel")[:200],
        }
        if not request.is_full:
            body["cancel_price"] = to_json_number(request.amount, request.currency)
        account = request.refund_account
        if account is not None:
            # Bootpay's own field names; it takes no phone number (bootpay.md §4).
            body["refund"] = {"bank_account": account.number, "bank_username": account.holder, "bank_code": account.bank}
        reply = self.send("cancel", "POST", "/cancel", json_body=body)
        if self.failed(reply):
            error = self.error(reply, "cancel")
            if isinstance(error, (AlreadyCanceled, AuthenticationFailed)) or error.outcome_unknown:
                raise error
            try:
                current = self.lookup(payment_id=request.payment_id)
            except GatewayError:
                raise error from None
            if "cancel_id" in error.message and current.balance == request.balance_before - request.amount:
                # This very cancel_id was applied before (its answer was lost): done, not refused.
                return CancelResult(pg_cancel_id=request.idempotency_key[:200], amount=request.amount, payment=current, raw=current.raw)
            if current.balance < request.balance_before:
                raise AlreadyCanceled(
                    error.message, gateway=self.alias, code=error.code, http_status=error.http_status_from_pg, response=error.response
                ) from error
            raise error
        payment = self.payment(self.cancel_receipt(self.json_object(reply, "cancel")))
        return CancelResult(
            pg_cancel_id=str(reply.data.get("cancel_id") or request.idempotency_key)[:200],
            amount=request.amount,
            payment=payment,
            raw=payment.raw,
        )

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        """``GET /v2/receipt/{receipt_id}``. Bootpay finds payments by receipt id only."""
        if not payment_id:
            raise NotFound("Bootpay looks payments up by receipt_id only", gateway=self.alias, code="RC_NOT_FOUND")
        path = f"/receipt/{quote(payment_id, safe='')}"
        return self.payment(self.call("lookup", "GET", path, params={"lookup_user_data": "false"}))

    # --- webhooks -------------------------------------------------------------------

    def webhook_claim(self, event: ParsedWebhook) -> str:
        """The receipt's ``status`` and ``cancelled_price``: the body's, or the fetched receipt's.

        A body that names a real receipt with a made-up status or cancelled
        amount is not confirmed by Bootpay, so it is refused (never applied
        nor counted as the event it pretends to be).
        """
        source = event.payment.raw if event.payment is not None else event.raw
        status = source.get("status")
        if status is None or isinstance(status, bool):
            return ""
        claim = f"status {status}"
        cancelled = source.get("cancelled_price")
        if cancelled is not None and not isinstance(cancelled, bool):
            claim += f", cancelled {canonical_amount(cancelled)}"
        return claim

    def webhook_claim_verdict(self, parsed: ParsedWebhook, verified: ParsedWebhook) -> str:
        """Confirmed: the body's status and (when it states one) cancelled amount are the receipt's.

        Stale: an earlier step of the receipt (a smaller cancelled amount than
        now, a virtual account issued that has been paid since). Refused: a
        status or amount the receipt never had.
        """
        body, receipt = parsed.raw, verified.payment.raw if verified.payment is not None else {}
        stated, status = body.get("status"), receipt.get("status")
        claimed_cancel, cancelled = body.get("cancelled_price"), receipt.get("cancelled_price") or 0
        same_status = stated is None or str(stated) == str(status)
        if same_status and (claimed_cancel is None or canonical_amount(claimed_cancel) == canonical_amount(cancelled)):
            return self.CLAIM_CONFIRMED
        try:
            claimed_amount = Decimal(str(claimed_cancel)) if claimed_cancel is not None else None
            receipt_amount = Decimal(str(cancelled))
        except ArithmeticError:
            return self.CLAIM_REFUSED
        earlier_cancel = claimed_amount is not None and claimed_amount.is_finite() and 0 <= claimed_amount < receipt_amount
        moved_on = {"5": ("1", "20"), "1": ("20",), "20": ("20",)}
        if (same_status or str(status) in moved_on.get(str(stated), ())) and (claimed_amount is None or earlier_cancel):
            return self.CLAIM_STALE
        return self.CLAIM_REFUSED

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
        """A Bootpay webhook (JSON): nothing in it is trusted until the receipt is fetched.

        Bootpay sends no event id; the delivery's id is a digest of
        ``receipt_id``, ``webhook_type``, ``status`` and ``cancelled_price``
        (two partial cancels of one receipt differ only by ``cancelled_price``),
        so a retried delivery is a duplicate and a new change is not. Deliveries
        about billing keys or identity checks come back with nothing to apply.
        """
        data = self.webhook_json(body)
        receipt_id = data.get("receipt_id")
        if not isinstance(receipt_id, str) or not receipt_id:
            raise WebhookVerificationError("no receipt_id")
        webhook_type = str(data.get("webhook_type") or "")
        status = data.get("status")
        if isinstance(status, str) and status.lstrip("-").isdigit():
            status = int(status)
        event_type = webhook_type or f"STATUS_{status}"
        event_id = "bootpay-" + digest(receipt_id, webhook_type, str(status), canonical_amount(data.get("cancelled_price")))
        other_type = webhook_type and webhook_type not in PAYMENT_WEBHOOK_TYPES
        if other_type or (isinstance(status, int) and status in OTHER_PRODUCT_STATUSES):
            return ParsedWebhook(event_id=event_id, event_type=event_type[:100], raw=data)
        return ParsedWebhook(
            event_id=event_id,
            event_type=event_type[:100],
            payment_id=receipt_id[:200],
            order_number=str(data.get("order_id") or "")[:64],
            verified=False,
            raw=data,
        )

    # --- configuration checks ----------------------------------------------------------

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """One complete key pair; a browser key with legacy keys; valid OPEN_TYPE and WEBHOOK_ALLOWED_IPS."""
        messages = super().check(debug=debug)
        where = self.where

        def missing(name: str, hint: str):
            messages.append(checks.Error(f"{where}[{name!r}] is not set.", hint=hint, id="django_pgpay.E004"))

        current, legacy = self._has("CLIENT_KEY", "SECRET_KEY"), self._has("APPLICATION_ID", "PRIVATE_KEY")
        if not current and not legacy:
            hint = "Bootpay needs CLIENT_KEY and SECRET_KEY (or the legacy APPLICATION_ID and PRIVATE_KEY); read them from the environment."
            if self._has("APPLICATION_ID") or self._has("PRIVATE_KEY"):
                for name in ("APPLICATION_ID", "PRIVATE_KEY"):
                    if not self._has(name):
                        missing(name, hint)
            else:
                for name in ("CLIENT_KEY", "SECRET_KEY"):
                    if not self._has(name):
                        missing(name, hint)
        elif legacy and not current and not self._has("CLIENT_KEY") and not self._has("WEB_APPLICATION_ID"):
            missing("WEB_APPLICATION_ID", "With legacy REST keys the browser needs the JavaScript application id (or a CLIENT_KEY).")
        open_type = self._options.get("OPEN_TYPE")
        if open_type and open_type not in OPEN_TYPES:
            messages.append(
                checks.Error(f"{where}['OPEN_TYPE'] = {open_type!r} is not one of {', '.join(OPEN_TYPES)}.", id="django_pgpay.E301")
            )
        if current and legacy:
            messages.append(
                checks.Warning(
                    f"{where}: both key pairs are set; CLIENT_KEY/SECRET_KEY are used, APPLICATION_ID/PRIVATE_KEY are not.",
                    hint="Remove the legacy pair.",
                    id="django_pgpay.W301",
                )
            )
        return messages


def _items(order: OrderSnapshot) -> list[dict[str, Any]]:
    """``items`` for the SDK, only when they add up to the price exactly (Bootpay refuses the payment otherwise)."""
    lines = list(order.line_items or ())
    if not lines or sum((line.total for line in lines), Decimal(0)) != order.amount:
        return []
    if any(line.unit_amount != line.unit_amount.to_integral_value() or line.quantity < 1 for line in lines):
        return []
    return [
        {
            "id": (line.sku or f"{order.order_number}-{index}")[:100],
            "name": line.name[:100],
            "qty": line.quantity,
            "price": to_json_number(line.unit_amount, "KRW"),
        }
        for index, line in enumerate(lines, 1)
    ]


def _seconds(value) -> float:
    """``expire_in`` as seconds from now: a number of seconds (v2), or an epoch time; 30 minutes if absent."""
    try:
        number = float(Decimal(str(value)))
    except (ArithmeticError, ValueError, TypeError):
        return float(DEFAULT_TOKEN_LIFETIME)
    if number > 10**9:  # an epoch time, not a duration
        number -= time.time()
    return number if number > 0 else float(DEFAULT_TOKEN_LIFETIME)


__all__ = ["ERRORS", "STATUSES", "BootpayGateway", "receipt_state"]
