"""PortOne V1 (iamport), the REST API of the tutorials: ``https://api.iamport.kr``.

Wire contract (see ``docs/portone.rst``):

* ``POST /users/getToken`` ``{imp_key, imp_secret}`` gives an access token valid
  for 30 minutes, sent as the raw ``Authorization`` header, as the official
  client ``iamport-rest-client`` sends it. The shared
  :class:`~django_pgpay.gateways.pipeline.AccessTokenCache` keeps one
  per gateway until shortly before ``expired_at``; threads that need it at the
  same time make one request, and a 401 refreshes it once.
* ``POST /payments/prepare`` ``{merchant_uid, amount, currency}`` registers the
  amount before the payment window opens (PortOne blocks a window opened with
  another amount).
* There is no confirm call: ``GET /payments/{imp_uid}`` *is* the confirmation.
  The amount PortOne reports is checked by the core (a mismatch fails the
  order and cancels the payment).
* ``POST /payments/cancel`` ``{imp_uid, amount?, checksum, reason}``: ``checksum``
  is the balance we believe is left, so PortOne refuses a cancel repeated
  after a lost answer.
* Every reply is ``{code, message, response}``; ``code != 0`` is an error even
  with HTTP 200.
* Webhooks ``{imp_uid, merchant_uid, status}`` are not signed: the payment is
  fetched again and only that is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.core import checks

from ..exceptions import (
    AlreadyCanceled,
    AuthenticationFailed,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    RefundAccountRequired,
    WebhookVerificationError,
)
from ..money import MoneyError, normalize_currency, to_json_number
from .http import HttpReply
from .portone_base import PortOneGateway, text
from .results import (
    CancelEntry,
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
    VirtualAccount,
)
from .wire import KOREA, amount_equals, digest, json_or_form, newest_cancel, unix_datetime

#: V1 ``status`` -> our PaymentState (refined by :meth:`PortOneV1Gateway.payment`: ``paid`` with a cancelled part is partial_canceled, ``ready`` with a virtual account waits for the deposit).
V1_STATUSES: dict[str, PaymentState] = {
    "ready": PaymentState.PENDING,
    "paid": PaymentState.APPROVED,
    "cancelled": PaymentState.CANCELED,
    "failed": PaymentState.FAILED,
}

#: V1 answers errors in words (``code`` is mostly 1 or -1): the known
#: messages, matched by a part of them, and what they mean.
V1_MESSAGES: tuple[tuple[str, type[GatewayError]], ...] = (
    ("이미 전액취소", AlreadyCanceled),  # 이미 전액취소된 주문입니다.
    ("존재하지 않", NotFound),  # 취소할 결제건이 존재하지 않습니다. / 존재하지 않는 결제정보입니다.
    ("환불계좌", RefundAccountRequired),  # 가상계좌 환불에는 환불계좌 정보(...)가 필요합니다.
)

#: Keys this module writes into the order's ``pg_data``.
PG_DATA_PREPARED_V1 = "portone_v1_prepared"

#: Longest ``merchant_uid`` V1 accepts.
V1_MERCHANT_UID_MAX = 40
#: Seconds before ``expired_at`` at which a V1 token is replaced.


class PortOneV1Gateway(PortOneGateway):
    """PortOne V1 (iamport), ``https://api.iamport.kr``, with the ``IMP.request_pay`` window.

    OPTIONS:

    ``IMP_KEY``, ``IMP_SECRET`` (required)
        The V1 REST API key and secret (console: 결제 연동 > 식별코드・API Keys > V1 API).
    ``MERCHANT_CODE`` (required)
        The ``imp…`` merchant code given to ``IMP.init`` in the browser.
    ``CHANNEL_KEY`` or ``PG`` (one required)
        The channel of ``IMP.request_pay``: a channel key, or the legacy
        ``"html5_inicis.MID"``-style ``pg`` string.
    ``PAY_METHOD``
        ``card`` (default), ``trans``, ``vbank``, ``phone``, ``kakaopay`` …
    ``INCLUDE_SANDBOX``
        Default False. True makes lookups include test-channel payments
        (``include_sandbox=true``), so they can pay orders: development only.
    ``NOTICE_URL``
        Default True: each payment carries ``notice_url`` = this alias's webhook
        URL. False leaves the console's webhook URL in charge.
    ``API_BASE``
        Default ``https://api.iamport.kr``; the sandbox points it at itself.
    ``JS_SDK_URL``
        Default ``https://cdn.iamport.kr/v1/iamport.js``.
    ``TIMEOUT``
        Seconds, or ``(connect, read)``; default ``(3.05, 30)``.
    """

    pg_name = "PortOne"
    sends_deposit_deadline = True
    signs_webhooks = False
    required_options = ("IMP_KEY", "IMP_SECRET", "MERCHANT_CODE")
    option_names = ("IMP_KEY", "IMP_SECRET", "MERCHANT_CODE", "PAY_METHOD", "CHANNEL_KEY", "PG", "INCLUDE_SANDBOX", "NOTICE_URL")

    DEFAULT_API_BASE = "https://api.iamport.kr"
    DEFAULT_JS_SDK_URL = "https://cdn.iamport.kr/v1/iamport.js"

    uses_access_token = True

    # --- token and the error shape ----------------------------------------------------

    def fetch_token(self) -> tuple[str, float]:
        """``POST /users/getToken``: the token and how long it stays valid (at most 30 minutes)."""
        body = {"imp_key": str(self.option("IMP_KEY")), "imp_secret": str(self.option("IMP_SECRET"))}
        reply = self.http.request("POST", "/users/getToken", json_body=body)
        if reply.status == 401:
            raise AuthenticationFailed(
                f"{self.alias}: PortOne refused IMP_KEY/IMP_SECRET", gateway=self.alias, code="UNAUTHORIZED", http_status=401
            )
        data = reply.data if isinstance(reply.data, dict) else {}
        token = data.get("response") if isinstance(data.get("response"), dict) else {}
        value, expired_at, now = token.get("access_token"), token.get("expired_at"), token.get("now")
        if not reply.ok or data.get("code") != 0 or not isinstance(value, str) or not value:
            raise GatewayUnavailable(
                f"{self.alias}: getToken answered HTTP {reply.status} without a token",
                gateway=self.alias,
                code="TOKEN_UNAVAILABLE",
                http_status=reply.status,
                sent=False,
            )
        try:
            valid_for = float(int(expired_at) - int(now))
        except (TypeError, ValueError):
            valid_for = 0.0
        return value, max(0.0, min(valid_for, 30 * 60.0))

    def auth_headers(self, verb: str, token: str | None, idempotency_key: str = "") -> dict[str, str]:
        """The raw token, as the official client ``iamport-rest-client`` sends it."""
        return {"Authorization": str(token)}

    @staticmethod
    def _envelope_code(reply: HttpReply) -> int | None:
        code = reply.data.get("code") if isinstance(reply.data, dict) else None
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    def failed(self, reply: HttpReply) -> bool:
        """Anything but HTTP 2xx with ``code == 0``: V1 answers business errors with HTTP 200."""
        return not (reply.ok and self._envelope_code(reply) == 0)

    def error_fields(self, reply: HttpReply) -> tuple[str, str]:
        """``PORTONE_{code}`` of an envelope (V1 codes are mostly 1 or -1: the message tells), else ``HTTP_{status}``."""
        code = self._envelope_code(reply)
        message = str(reply.data.get("message") or "") if isinstance(reply.data, dict) else ""
        return (f"PORTONE_{code}" if code is not None and reply.status < 500 else f"HTTP_{reply.status}"), message

    def unwrap(self, data: dict, verb: str) -> Any:
        """``response`` of the ``{code, message, response}`` envelope."""
        return data.get("response")

    def error_class(self, reply: HttpReply, code: str, message: str, verb: str) -> type[GatewayError]:
        """401 our keys; not an envelope (a proxy's page, 5xx) unknown; then ``V1_MESSAGES``, then the status.

        A refused ``confirm`` or ``lookup`` that names no known message is an
        unknown outcome (V1 answers them with code -1 for passing troubles);
        a refused cancel or withdrawal is a refusal (a checksum that does not
        match the balance, a PG refusal, an account not waiting any more).
        """
        if reply.status == 401:
            return AuthenticationFailed
        if not code.startswith("PORTONE_"):
            return GatewayUnavailable
        for fragment, cls in V1_MESSAGES:
            if fragment in message:
                return cls
        if verb in ("confirm", "lookup") and reply.status != 404:
            return GatewayUnavailable
        return self.status_error(reply.status, verb)

    def _sandbox_params(self) -> dict[str, str] | None:
        return {"include_sandbox": "true"} if self.include_sandbox else None

    # --- checkout and return ---------------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """Register the amount (``POST /payments/prepare``), then the parameters of ``IMP.request_pay``.

        The buyer's window comes back by the callback (the template sends the
        browser to the return URL) and, on mobile, by ``m_redirect_url``: both
        land on the same return URL with ``imp_uid`` and ``merchant_uid``.
        An order's deposit deadline is sent as ``vbank_due``: a virtual account
        is due no later.
        """
        if len(order.order_number) > V1_MERCHANT_UID_MAX:
            raise InvalidRequest(
                f"{self.alias}: PortOne V1 takes order numbers of at most {V1_MERCHANT_UID_MAX} characters",
                gateway=self.alias,
                code="ORDER_NUMBER_TOO_LONG",
            )
        pg_data = self._prepare(order)
        request: dict[str, Any] = {"pay_method": str(self.option("PAY_METHOD", "card") or "card")}
        channel_key = self._options.get("CHANNEL_KEY")
        if channel_key:
            request["channelKey"] = str(channel_key)
        else:
            request["pg"] = str(self.option("PG"))
        request.update(
            merchant_uid=order.order_number,
            name=order.order_name[:40],
            amount=to_json_number(order.amount, order.currency),
            currency=order.currency,
            m_redirect_url=urls.success_url,
        )
        notice_url = self._notice_url(urls)
        if notice_url:
            request["notice_url"] = notice_url
        if order.deposit_deadline is not None:
            # A virtual account due no later than the shop's deadline, in Korean time to the minute
            # (rounded down). The format is PortOne's playground's (YYYYMMDDhhmm); other methods ignore it.
            request["vbank_due"] = order.deposit_deadline.astimezone(KOREA).strftime("%Y%m%d%H%M")
        for key, value in (("buyer_email", order.buyer_email), ("buyer_name", order.buyer_name), ("buyer_tel", order.buyer_phone)):
            if value:
                request[key] = value
        return CheckoutResult(
            kind="widget",
            script_url=self.script_url,
            template_name="django_pgpay/checkout/portone.html",
            params={"merchantCode": str(self.option("MERCHANT_CODE")), "request": request, "returnUrl": urls.success_url},
            pg_data=pg_data,
        )

    def _prepare(self, order: OrderSnapshot) -> dict[str, str]:
        """Pre-register the order's amount once; an existing registration is read back (and corrected)."""
        marker = self._prepared_marker(order)
        if (order.pg_data or {}).get(PG_DATA_PREPARED_V1) == marker:
            return {}
        body = {
            "merchant_uid": order.order_number,
            "amount": to_json_number(order.amount, order.currency),
            "currency": order.currency,
        }
        try:
            self.call("prepare", "POST", "/payments/prepare", json_body=body)
        except InvalidRequest as refused:
            # Registered before (a checkout opened again): what does PortOne hold?
            try:
                held = self.call("prepare", "GET", f"/payments/prepare/{quote(order.order_number, safe='')}")
            except (InvalidRequest, NotFound):
                raise refused from None
            if not isinstance(held, Mapping):
                raise refused from None
            same_amount = amount_equals(held.get("amount"), order.amount)
            same_currency = held.get("currency") in (None, "", order.currency)
            if not (same_amount and same_currency):
                self.call("prepare", "PUT", "/payments/prepare", json_body=body)
        return {PG_DATA_PREPARED_V1: marker}

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        """``?imp_uid=&merchant_uid=`` (+ ``error_code``/``error_msg`` or ``imp_success=false`` on failure)."""
        imp_uid = self._return_value(params, "imp_uid")[:200]
        merchant_uid = self._return_value(params, "merchant_uid")[:64]
        error_code = self._return_value(params, "error_code")
        failed = str(params.get("imp_success") or params.get("success") or "").lower() == "false"
        if error_code or failed:
            return ReturnParams(
                payment_id=imp_uid,
                order_number=merchant_uid,
                error_code=(error_code or "PAYMENT_FAILED")[:100],
                error_message=self._return_value(params, "error_msg")[:500],
            )
        if not imp_uid or not merchant_uid:
            raise InvalidRequest("imp_uid and merchant_uid are required", gateway=self.alias, code="INVALID_RETURN")
        return ReturnParams(payment_id=imp_uid, order_number=merchant_uid)

    # --- verify, lookup, cancel ----------------------------------------------------------

    def confirm_lookup(self, request: ConfirmRequest) -> PaymentResult:
        """``GET /payments/{imp_uid}``: V1 approves in the window; this fetch is the confirmation (the base checks the order)."""
        return self._fetch(request.payment_id, verb="confirm")

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        """By ``imp_uid``, or by ``merchant_uid`` (``GET /payments/find/{merchant_uid}``: the latest attempt)."""
        if payment_id:
            return self._fetch(payment_id, verb="lookup")
        if order is None or not order.order_number:
            raise NotFound("no imp_uid or merchant_uid to look up", gateway=self.alias, code="NOT_FOUND")
        path = f"/payments/find/{quote(order.order_number, safe='')}"
        return self.payment(self.call("lookup", "GET", path, params=self._sandbox_params()))

    def _fetch(self, imp_uid: str, *, verb: str) -> PaymentResult:
        data = self.call(verb, "GET", f"/payments/{quote(imp_uid, safe='')}", params=self._sandbox_params())
        return self.payment(data)

    def cancel(self, request: CancelRequest) -> CancelResult:
        """``POST /payments/cancel`` with ``checksum`` = the balance before this cancel; ``amount`` only when partial."""
        body: dict[str, Any] = {"imp_uid": request.payment_id}
        if not request.is_full:
            body["amount"] = to_json_number(request.amount, request.currency)
        body["checksum"] = to_json_number(request.balance_before, request.currency)
        body["reason"] = (request.reason or "cancel")[:255]
        account = request.refund_account
        if account is not None:
            body.update(refund_holder=account.holder, refund_bank=account.bank, refund_account=account.number)
            if account.phone:
                body["refund_tel"] = account.phone
        payment = self.payment(self.call("cancel", "POST", "/payments/cancel", json_body=body))
        entry = newest_cancel(payment.cancels)
        return CancelResult(
            pg_cancel_id=entry.pg_cancel_id if entry else "",
            amount=entry.amount if entry else request.amount,
            payment=payment,
            raw=payment.raw,
        )

    def withdraw(self, request: CancelRequest) -> CancelResult:
        """``DELETE /vbanks/{imp_uid}`` (가상계좌 발급취소): closes an account before any deposit.

        PortOne answers 400 when the payment is not an account waiting for its
        deposit (paid meanwhile, or closed already): a refusal, after which the
        caller looks the payment up.
        """
        payment = self.payment(self.call("withdraw", "DELETE", f"/vbanks/{quote(request.payment_id, safe='')}"))
        return CancelResult(pg_cancel_id="", amount=request.amount, payment=payment, raw=payment.raw)

    def attempts(self, order: OrderSnapshot, known_ids=()) -> list[PaymentResult]:
        """Every attempt of ``order`` (``GET /payments/findAll/{merchant_uid}``), plus known ids it did not list.

        V1 keeps one payment per window a buyer opened for an order number
        (two tabs are two payments): each paid one that is not the order's
        must be given back.
        """
        found: dict[str, PaymentResult] = {}
        path = f"/payments/findAll/{quote(order.order_number, safe='')}"
        for page in range(1, 21):
            params = {**(self._sandbox_params() or {}), "page": str(page), "limit": "100"}
            try:
                listing = self.call("lookup", "GET", path, params=params)
            except NotFound:
                break
            if not isinstance(listing, Mapping):
                raise self.malformed("payment list", data=listing)
            for item in listing.get("list") or ():
                try:
                    result = self.payment(item)
                except NotFound:  # a test-channel payment: moves no money
                    continue
                if result.order_number == order.order_number:
                    found.setdefault(result.payment_id, result)
            if not listing.get("next"):
                break
        for payment_id in sorted({str(p) for p in known_ids} - {""} - set(found)):
            try:
                result = self._fetch(payment_id, verb="lookup")
            except NotFound:
                continue
            if result.order_number == order.order_number:
                found.setdefault(result.payment_id, result)
        return list(found.values())

    # --- webhooks -------------------------------------------------------------------------

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
        """``{imp_uid, merchant_uid, status[, cancellation_id]}`` as JSON or a form; trusted only after a fetch."""
        data = json_or_form(body)
        if data is None:
            raise WebhookVerificationError("the body is neither a JSON object nor a form")
        imp_uid = str(data.get("imp_uid") or "")[:200]
        merchant_uid = str(data.get("merchant_uid") or "")[:64]
        status = str(data.get("status") or "")[:50]
        if not imp_uid and not merchant_uid:
            raise WebhookVerificationError("no imp_uid or merchant_uid")
        # V1 sends no event id: one made of what distinguishes two notifications
        # (equal for a repeated delivery of the same change).
        event_id = "portone-" + digest(imp_uid, merchant_uid, status, data.get("cancellation_id"))
        return ParsedWebhook(
            event_id=event_id,
            event_type=status or "notification",
            payment_id=imp_uid,
            order_number=merchant_uid,
            verified=False,
            raw=data,
        )

    def webhook_claim(self, event: ParsedWebhook) -> str:
        """V1's ``status`` word: the body's, or the fetched payment's."""
        source = event.payment.raw if event.payment is not None else event.raw
        return str(source.get("status") or "")

    def webhook_claim_verdict(self, parsed: ParsedWebhook, verified: ParsedWebhook) -> str:
        """Confirmed: the body's ``status`` is the payment's (a ``cancelled`` one naming a cancel PortOne made).

        PortOne sends ``cancelled`` for a partial cancel too (the payment stays
        ``paid``): such a claim is confirmed when its ``cancellation_id`` is in
        the payment's ``cancel_history`` (or, without one, when something was
        cancelled). Stale: ``ready`` or ``paid`` for a payment that has moved on
        (deposited, cancelled). Anything else is refused.
        """
        claimed = self.webhook_claim(parsed)
        payment = verified.payment.raw if verified.payment is not None else {}
        actual = str(payment.get("status") or "")
        if claimed == "cancelled":
            named = parsed.raw.get("cancellation_id")
            history = [c.get("cancellation_id") for c in (payment.get("cancel_history") or ()) if isinstance(c, Mapping)]
            cancelled = actual == "cancelled" or bool(verified.payment and verified.payment.canceled_amount > 0)
            confirmed = named in history if named else cancelled
            return self.CLAIM_CONFIRMED if confirmed else self.CLAIM_REFUSED
        if not claimed or claimed == actual:
            return self.CLAIM_CONFIRMED
        moved_on = {"ready": ("paid", "cancelled"), "paid": ("cancelled",)}
        return self.CLAIM_STALE if actual in moved_on.get(claimed, ()) else self.CLAIM_REFUSED

    # --- Payment -> PaymentResult --------------------------------------------------------

    def payment(self, data: Any) -> PaymentResult:
        """Read a V1 Payment; a reply we cannot read is an unknown outcome, never a guess."""
        if not isinstance(data, Mapping):
            raise self.malformed("Payment (not an object)")
        try:
            status = str(data["status"])
            state = V1_STATUSES[status]
            currency = normalize_currency(str(data.get("currency") or "KRW"))
            amount = self.decimal(data["amount"])
            cancel_amount = self.decimal(data.get("cancel_amount") or 0)
            imp_uid, merchant_uid = text(data["imp_uid"]), text(data["merchant_uid"])
            cancels = tuple(self._cancel_entry(c) for c in (data.get("cancel_history") or ()) if isinstance(c, Mapping))
        except (KeyError, TypeError, ValueError, ArithmeticError, MoneyError) as exc:
            raise self.malformed("Payment object", exc, data) from exc
        if not (amount.is_finite() and cancel_amount.is_finite()) or amount < 0 or not 0 <= cancel_amount <= amount:
            raise self.malformed("Payment object (inconsistent amounts)", data=data)
        if data.get("sandbox") is True and not self.include_sandbox:
            # A test-channel payment moves no money: it never pays an order here.
            raise NotFound(f"{self.alias}: {imp_uid} was made on a test channel", gateway=self.alias, code="SANDBOX_PAYMENT")
        pay_method = str(data.get("pay_method") or "")
        pg_data: dict[str, Any] = {
            "portone_pg_provider": str(data.get("pg_provider") or ""),
            "portone_pg_tid": str(data.get("pg_tid") or ""),
        }
        if data.get("sandbox") is True:
            pg_data["portone_sandbox"] = True
        account = None
        if pay_method == "vbank" and data.get("vbank_num"):
            account = VirtualAccount(
                bank=str(data.get("vbank_code") or ""),
                number=str(data["vbank_num"]),
                holder=str(data.get("vbank_holder") or ""),
                due=unix_datetime(data.get("vbank_date")),
                bank_name=str(data.get("vbank_name") or ""),
            )
        canceled = cancel_amount
        if status == "paid" and cancel_amount > 0:
            state = PaymentState.PARTIAL_CANCELED
        elif status == "ready" and account is not None:
            state = PaymentState.WAITING_FOR_DEPOSIT
        elif status == "cancelled":
            # Nothing is left of a cancelled payment (a withdrawn virtual account may report 0 cancelled).
            canceled = amount
        return PaymentResult(
            state=state,
            payment_id=imp_uid,
            order_number=merchant_uid,
            amount=amount,
            currency=currency,
            canceled_amount=canceled,
            method=pay_method,
            receipt_url=str(data.get("receipt_url") or ""),
            approved_at=unix_datetime(data.get("paid_at")),
            cancels=cancels,
            failure_code="",
            failure_message=str(data.get("fail_reason") or ""),
            virtual_account=account,
            pg_data=pg_data,
            raw=dict(data),
        )

    def _cancel_entry(self, item: Mapping[str, Any]) -> CancelEntry:
        amount = self.decimal(item["amount"])
        cancelled_at = item.get("cancelled_at")
        # cancellation_id is required by the spec; without it, an id made of what
        # the entry says keeps it recognisable from one lookup to the next.
        pg_id = str(item.get("cancellation_id") or "") or f"{item.get('pg_tid') or 'cancel'}-{cancelled_at}-{amount}"
        return CancelEntry(pg_cancel_id=pg_id, amount=amount, canceled_at=unix_datetime(cancelled_at))

    # --- configuration checks -----------------------------------------------------------

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """Missing keys; no channel; a merchant code that is not ``imp…``; test payments accepted without DEBUG."""
        messages = super().check(debug=debug)
        where = self.where
        if not self._options.get("CHANNEL_KEY") and not self._options.get("PG"):
            messages.append(
                checks.Error(
                    f'{where}: set "CHANNEL_KEY" (or the legacy "PG").',
                    hint="Copy the channel key from the PortOne console (결제 연동 > 채널 관리).",
                    id="django_pgpay.E111",
                )
            )
        code = str(self._options.get("MERCHANT_CODE") or "")
        if code and not code.startswith("imp"):
            messages.append(
                checks.Warning(
                    f'{where}["MERCHANT_CODE"] does not start with "imp".',
                    hint="It is the 고객사 식별코드 (imp########) shown beside the V1 API keys.",
                    id="django_pgpay.W111",
                )
            )
        return messages + self.sandbox_checks(debug)


__all__ = ["V1_MESSAGES", "V1_STATUSES", "PG_DATA_PREPARED_V1", "PortOneV1Gateway"]
