"""The gateway contract.

A gateway is built once per alias of ``PGPAY["GATEWAYS"]`` from its
``OPTIONS`` and shared between threads. Subclasses declare what their PG can do
with the capability flags and fill in the verbs; a verb the PG lacks raises
:class:`~django_pgpay.exceptions.UnsupportedFeature`.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core import checks
from django.utils import timezone
from django.utils.translation import gettext as _

from ..exceptions import (
    ConfigurationError,
    NotFound,
    OperationRefused,
    PgPayDeprecationWarning,
    UnsupportedFeature,
    WebhookVerificationError,
)
from .http import loads_json
from .results import (
    CancelRequest,
    CancelResult,
    CheckoutResult,
    CheckoutUrls,
    ConfirmRequest,
    OrderSnapshot,
    ParsedWebhook,
    PaymentResult,
    ReturnParams,
)

_MISSING = object()

#: Key of an order's ``pg_data`` that holds the payment ids its buyer's window reported.
PG_DATA_ATTEMPTS = "pgpay_attempts"
#: How many reported payment ids an order keeps.
MAX_REPORTED_ATTEMPTS = 20


class BaseGateway:
    """Base class of every gateway.

    A subclass must set :attr:`pg_name`, the capability flags that are true for
    its PG and :attr:`required_options`, and implement :meth:`checkout`,
    :meth:`parse_return`, :meth:`confirm`, :meth:`cancel`, :meth:`lookup` and
    :meth:`parse_webhook`. It must never save a model, read a request, or put
    a secret in an exception, a log line or its ``repr``.
    """

    #: Human name of the PG, for messages and the admin.
    pg_name = "PG"
    #: The PG can give back part of a payment, any number of times.
    supports_partial_cancel = False
    #: Money-moving calls carry a key the PG uses to refuse duplicates
    #: (Idempotency-Key, cancel_id, checksum).
    supports_idempotency_key = False
    #: Webhook deliveries carry a signature that proves them without a lookup.
    signs_webhooks = False
    #: The PG can find a payment by our order number.
    supports_lookup_by_order = False
    #: The PG issues virtual accounts (payment arrives later by bank transfer).
    supports_virtual_account = False
    #: How the PG spells a refund account's bank (:func:`django_pgpay.refund_accounts.bank_code`):
    #: ``"kftc"`` the KFTC's 3 digits (``"088"``), ``"kftc2"`` its last two (Toss: ``"88"``),
    #: ``"enum"`` PortOne V2's names (``"SHINHAN"``).
    refund_bank_code_style = "kftc"
    #: The checkout asks the PG for a virtual account due by the order's deposit deadline
    #: (:attr:`~django_pgpay.gateways.results.OrderSnapshot.deposit_deadline`).
    sends_deposit_deadline = False
    #: The shop must call the PG to approve a payment after the browser returns.
    requires_confirm_call = True
    #: OPTIONS keys that must be set (a system check names the missing one).
    required_options: tuple[str, ...] = ()
    #: What the shop must answer to an accepted webhook: (status, content type, body).
    webhook_ack: tuple[int, str, bytes] = (200, "text/plain", b"OK")

    #: Old spellings of options -> the one spelling every gateway uses. The old
    #: name still works; a system check (``django_pgpay.W010``) names the new one.
    RENAMED_OPTIONS: Mapping[str, str] = {}
    #: Every OPTIONS key the gateway reads, besides ``WEBHOOK_ALLOWED_IPS`` (every gateway's)
    #: and the old spellings. When a gateway declares them, a key it does not read is an
    #: error (``django_pgpay.E303``): ``WEBHOOK_ALLOWED_IP`` would otherwise turn the
    #: allowlist off in silence. None (a gateway of the shop's own): not checked.
    option_names: tuple[str, ...] | None = None

    def __init__(self, alias: str, options: Mapping[str, Any]):
        self.alias = alias
        self._given = dict(options)
        self._options = dict(options)
        for old, new in self.RENAMED_OPTIONS.items():
            if old in self._options and new not in self._options:
                self._options[new] = self._options[old]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"

    def option(self, name: str, default: Any = _MISSING) -> Any:
        """One of the gateway's OPTIONS, or a :class:`ConfigurationError` naming the key."""
        value = self._options.get(name, default)
        if value is _MISSING or (value in (None, "") and default is _MISSING):
            raise ConfigurationError(f'PGPAY["GATEWAYS"][{self.alias!r}]["OPTIONS"][{name!r}] is not set.')
        return value

    def close(self) -> None:
        """Release network resources (called when the settings change)."""

    # --- configuration checks -------------------------------------------------

    @property
    def where(self) -> str:
        """``PGPAY["GATEWAYS"][alias]["OPTIONS"]``, for messages that name an option."""
        return f'PGPAY["GATEWAYS"][{self.alias!r}]["OPTIONS"]'

    def known_options(self) -> set[str] | None:
        """The OPTIONS keys this gateway reads (None when it does not declare :attr:`option_names`)."""
        if self.option_names is None:
            return None
        return {"WEBHOOK_ALLOWED_IPS", *self.option_names, *self.required_options, *self.RENAMED_OPTIONS}

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """System-check messages about this gateway's options (missing keys, live keys under DEBUG ...)."""
        messages = []
        known = self.known_options()
        for name in sorted(set(self._given) - known, key=str) if known is not None else ():
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            messages.append(
                checks.Error(
                    f"{self.where}[{name!r}] is not an option of the {self.pg_name} gateway: it would be ignored.",
                    hint=f"Did you mean {close[0]!r}?" if close else f"Its options: {', '.join(sorted(known))}.",
                    id="django_pgpay.E303",
                )
            )
        for old, new in self.RENAMED_OPTIONS.items():
            if old in self._given:
                messages.append(
                    checks.Warning(
                        f"{self.where}[{old!r}] is now spelled {new!r}.",
                        hint=f"Rename it to {new!r}; the old name will stop working in a future release.",
                        id="django_pgpay.W010",
                    )
                )
        if self._options.get("WEBHOOK_ALLOWED_IPS"):
            try:
                self.webhook_networks()
            except ValueError as exc:
                messages.append(checks.Error(f"{self.where}['WEBHOOK_ALLOWED_IPS']: {exc}", id="django_pgpay.E302"))
        for name in self.required_options:
            if self._options.get(name) in (None, ""):
                messages.append(
                    checks.Error(
                        f'PGPAY["GATEWAYS"][{self.alias!r}]["OPTIONS"][{name!r}] is not set.',
                        hint=f"{self.pg_name} needs it; read it from the environment, never from code.",
                        id="django_pgpay.E004",
                    )
                )
        return messages

    # --- the verbs --------------------------------------------------------------

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """What the browser needs to pay ``order`` (widget parameters or a redirect URL)."""
        raise UnsupportedFeature(self.pg_name, "checkout")

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        """Read the ids the PG put on the return URL. Nothing here is trusted yet."""
        raise UnsupportedFeature(self.pg_name, "return URLs")

    def confirm(self, request: ConfirmRequest) -> PaymentResult:
        """Approve the payment at the PG (or, where the PG has no confirm call, fetch it)."""
        raise UnsupportedFeature(self.pg_name, "confirm")

    def cancel(self, request: CancelRequest) -> CancelResult:
        """Give back ``request.amount`` of a payment."""
        raise UnsupportedFeature(self.pg_name, "cancel")

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        """The PG's current view of a payment, by its id or (if supported) by the order.

        Raises :class:`~django_pgpay.exceptions.NotFound` when the PG knows none.
        """
        raise UnsupportedFeature(self.pg_name, "lookup")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ParsedWebhook:
        """Parse (and, where the PG signs, verify) one delivery received now.

        Delegates to :meth:`parse_received_webhook`, the one primitive a gateway
        implements. Raises :class:`~django_pgpay.exceptions.WebhookVerificationError`
        for a delivery that is malformed or fails its signature.
        """
        return self.parse_received_webhook(headers, body, received_at=timezone.now())

    #: The PG's published webhook senders: what ``WEBHOOK_ALLOWED_IPS = True`` allows (Bootpay's 223.130.82.0/24).
    WEBHOOK_NETWORKS: tuple[str, ...] = ()

    def check_webhook_source(self, remote_addr: str | None, headers: Mapping[str, str]) -> None:
        """Refuse a delivery that comes from where the PG never sends from (``WEBHOOK_ALLOWED_IPS``, off by default).

        Called before the body is read. Verification proves a delivery, not its
        address, so by default every source is accepted; with the option
        (``True``: the PG's own :attr:`WEBHOOK_NETWORKS`, or a list of networks)
        a delivery from elsewhere raises
        :class:`~django_pgpay.exceptions.WebhookVerificationError`, is kept in the
        log and answered 403. ``remote_addr`` is Django's ``REMOTE_ADDR`` as
        stored with the delivery (None when unknown).
        """
        if not self._options.get("WEBHOOK_ALLOWED_IPS"):
            return
        try:
            networks = self.webhook_networks()
        except ValueError as exc:
            raise WebhookVerificationError(f"WEBHOOK_ALLOWED_IPS is not valid: {exc}") from exc
        try:
            address = ipaddress.ip_address(str(remote_addr or ""))
        except ValueError:
            raise WebhookVerificationError(f"no usable source address ({remote_addr!r})") from None
        if not any(address in network for network in networks):
            raise WebhookVerificationError(f"{address} is not in WEBHOOK_ALLOWED_IPS")

    def webhook_networks(self) -> list:
        """The networks ``WEBHOOK_ALLOWED_IPS`` allows (``True``: :attr:`WEBHOOK_NETWORKS`). ValueError if invalid."""
        setting = self._options.get("WEBHOOK_ALLOWED_IPS")
        if setting is True and self.WEBHOOK_NETWORKS:
            setting = self.WEBHOOK_NETWORKS
        if isinstance(setting, str) or not isinstance(setting, (list, tuple)):
            raise ValueError("expected True or a list of networks such as ['223.130.82.0/24']")
        return [ipaddress.ip_network(str(entry), strict=False) for entry in setting]

    def webhook_json(self, body: bytes) -> dict:
        """A webhook body that must be a JSON object, or :class:`WebhookVerificationError`."""
        try:
            data = loads_json(body)
        except ValueError as exc:
            raise WebhookVerificationError("malformed JSON") from exc
        if not isinstance(data, dict):
            raise WebhookVerificationError("the body is not a JSON object")
        return data

    def live_or_test_key_checks(self, mode: str, debug: bool, *, label: str, ids: tuple[str, str], hints: tuple[str, str]) -> list:
        """Live keys under DEBUG (real money in development) or test keys without it (no real payment)."""
        if mode == "live" and debug:
            return [
                checks.Warning(f"{self.where}: live {label} keys with DEBUG = True; real cards will be charged.", hint=hints[0], id=ids[0])
            ]
        if mode == "test" and not debug:
            return [
                checks.Warning(f"{self.where}: test {label} keys with DEBUG = False; no payment will be real.", hint=hints[1], id=ids[1])
            ]
        return []

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
        """Parse a delivery as of ``received_at`` (when it arrived): the one webhook primitive.

        :func:`django_pgpay.webhooks.process` calls this with the time the
        delivery was logged, :meth:`parse_webhook` with now. A gateway whose
        signatures carry a timestamp (Stripe, PortOne V2) checks it against
        ``received_at`` rather than the clock, so a delivery whose handler
        failed can be processed again later from the log, while a replayed copy
        (a new delivery, received now) is still refused as stale. Gateways that
        sign nothing ignore the time.

        A gateway written before this primitive, which overrides only
        :meth:`parse_webhook`, still works (with a
        :class:`~django_pgpay.exceptions.PgPayDeprecationWarning`).
        """
        if type(self).parse_webhook is not BaseGateway.parse_webhook:
            import warnings

            warnings.warn(
                f"{type(self).__name__} overrides parse_webhook(); override parse_received_webhook(headers, body, *, received_at) instead.",
                PgPayDeprecationWarning,
                stacklevel=2,
            )
            return self.parse_webhook(headers, body)
        raise UnsupportedFeature(self.pg_name, "webhooks")

    def verify_webhook(self, event: ParsedWebhook, order: OrderSnapshot | None) -> ParsedWebhook:
        """Settle an unsigned delivery against the PG or the stored order.

        The default re-fetches the payment and returns the event with the
        fetched ``payment`` and ``verified=True``. Gateways whose deliveries
        carry a per-payment secret (Toss's deposit callback) override this.
        """
        if event.verified and event.payment is not None:
            return event
        payment = self.lookup(payment_id=event.payment_id, order=order)
        from dataclasses import replace

        return replace(event, payment=payment, verified=True)

    def webhook_claim(self, event: ParsedWebhook) -> str:
        """What a delivery says: the PG's own status word for the payment.

        For a parsed delivery, the status its body claims; for a verified
        event, the status of the payment the PG reported. "" when there is
        none. Unsigned PGs implement it, so that :meth:`webhook_claim_verdict`
        can refuse a body that claims what the PG does not.
        """
        return ""

    #: What :meth:`webhook_claim_verdict` answers.
    CLAIM_CONFIRMED, CLAIM_STALE, CLAIM_REFUSED = "confirmed", "stale", "refused"

    def webhook_claim_verdict(self, parsed: ParsedWebhook, verified: ParsedWebhook) -> str:
        """Does the PG confirm what the delivery's body claims?

        ``"confirmed"``: a signed delivery, or an unsigned one whose claim (its
        status, the amounts it states) is what the PG reports now: it is
        applied. ``"stale"``: the PG has moved on since (two quick cancels, the
        first delivery late): answered 2xx, nothing applied from it. ``"refused"``:
        a claim the PG never made (a forged body naming a real payment): 4xx,
        refused, never counted as the event it pretends to be. The default
        knows no history: what is not confirmed is refused.
        """
        if self.signs_webhooks:
            return self.CLAIM_CONFIRMED
        claimed = self.webhook_claim(parsed)
        return self.CLAIM_CONFIRMED if not claimed or claimed == self.webhook_claim(verified) else self.CLAIM_REFUSED

    def webhook_dedup_key(self, verified: ParsedWebhook) -> str:
        """The key two deliveries of the same verified event share (never built from an unverified body).

        A signed delivery's id is proved by its signature. For an unsigned
        one, the key is made of the payment's state as the PG reported it, its
        :attr:`~django_pgpay.gateways.results.PaymentResult.revision` and
        approval time included:
        two deliveries that report the same state of the same change are one
        event (a payment that comes back to an earlier state, a deposit made
        again after the bank took the first one back, is a new one).
        """
        payment = verified.payment
        if self.signs_webhooks or payment is None:
            return verified.event_id
        parts = (
            payment.payment_id,
            self.webhook_claim(verified),
            payment.state.value,
            str(payment.amount),
            str(payment.canceled_amount),
            ",".join(c.pg_cancel_id for c in payment.cancels),
            # The change the state came from: the PG's revision, and the approval's time (a deposit made
            # again is approved anew); each only when the PG reports it.
            *(part for part in (payment.revision, payment.approved_at.isoformat() if payment.approved_at else "") if part),
        )
        import hashlib

        return f"{self.alias}-state-" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]

    def payment_references(self, payment_id: str, pg_data: Mapping[str, Any]) -> set[str]:
        """Every id by which the PG's return URL or webhooks may name one payment.

        Most PGs use one id; Stripe returns the Checkout Session's id to the
        browser while the payment itself is a PaymentIntent, so its gateway adds
        the session id kept in ``pg_data``.
        """
        return {payment_id} - {""}

    def abandon(self, order: OrderSnapshot) -> None:
        """Make a checkout unusable at the PG before its order expires (optional).

        Called by :func:`django_pgpay.payments.expire` for a READY order, before
        the order is marked EXPIRED; raising leaves the order as it is.
        """

    def merge_checkout_data(self, stored: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        """The order's ``pg_data`` once ``new`` (a :class:`CheckoutResult`'s ``pg_data``) is added to ``stored``.

        Called under the order's lock with what the order holds at that moment
        (another checkout of the same order may have written it since this one
        read the order). The default lets ``new``'s keys win; a PG whose
        checkouts each open something payable merges the lists of them
        (Stripe's Checkout Sessions).
        """
        return {**stored, **new}

    def known_attempts(self, pg_data: Mapping[str, Any]) -> set[str]:
        """Payment ids of the order's attempts that its ``pg_data`` remembers.

        Besides the order's payment and its ledger rows, some PGs name attempts
        only through what the checkout or the buyer's window reported: the
        payment ids the window posted to the attempt URL
        (:class:`~django_pgpay.views.AttemptView`, kept under
        :data:`PG_DATA_ATTEMPTS`), Stripe's Checkout Sessions.
        """
        return {str(p) for p in (pg_data or {}).get(PG_DATA_ATTEMPTS) or () if p}

    def attempts(self, order: OrderSnapshot, known_ids: Iterable[str] = ()) -> list[PaymentResult]:
        """The PG's view of every attempt to pay ``order`` that it can tell of.

        ``known_ids`` are the payment ids the shop knows (the order's payment,
        its ledger rows, :meth:`known_attempts`). The default looks each of
        them up and, where the PG can find a payment by our order number, that
        one too; a PG that lists every attempt of an order (PortOne V1's
        ``findAll``) overrides this. Attempts of other orders are left out.
        Raises :class:`~django_pgpay.exceptions.GatewayUnavailable` when the
        PG cannot be read: a partial view would be a guess.
        """
        found: dict[str, PaymentResult] = {}

        def keep(result: PaymentResult | None) -> None:
            if result is not None and (not result.order_number or result.order_number == order.order_number):
                found.setdefault(result.payment_id, result)

        for payment_id in sorted({str(p) for p in known_ids} - {""}):
            if any(payment_id in self.payment_references(r.payment_id, r.pg_data) for r in found.values()):
                continue
            try:
                keep(self.lookup(payment_id=payment_id, order=order))
            except NotFound:
                continue
        # By the order number too, unless an attempt already holds (or awaits) the money:
        # PGs that find a payment by order number let one order number be paid once.
        holding = any(r.state.is_paid or r.state.value == "waiting_for_deposit" for r in found.values())
        if self.supports_lookup_by_order and not holding:
            try:
                keep(self.lookup(order=order))
            except (NotFound, UnsupportedFeature):
                pass
        return list(found.values())

    def withdraw(self, request: CancelRequest) -> CancelResult:
        """Close an unpaid virtual account at the PG (no money moves), so no deposit can arrive.

        The default asks the PG to cancel the whole payment (Toss and Bootpay
        close a virtual account waiting for its deposit that way); PGs with a
        call of their own for it override this.
        """
        return self.cancel(request)

    # --- helpers for subclasses -------------------------------------------------

    @staticmethod
    def decimal(value: Any) -> Decimal:
        """A PG's JSON number as Decimal (never through float)."""
        if isinstance(value, Decimal):
            return value
        if isinstance(value, bool):
            raise TypeError("a boolean is not an amount")
        if isinstance(value, int):
            return Decimal(value)
        if isinstance(value, float):
            # Parsed replies use Decimal for non-integers; a float here means a
            # caller bypassed loads_json. Go through repr to keep the digits.
            return Decimal(repr(value))
        return Decimal(str(value))

    def deposit_hours(self, order: OrderSnapshot, *, maximum: int | None = None) -> int:
        """Whole hours from now to ``order.deposit_deadline``, rounded down (at most ``maximum``).

        For PGs that take a virtual account's validity in hours: rounded down,
        the account closes at the shop's deadline or before. Less than an hour
        left: :class:`~django_pgpay.exceptions.OperationRefused`
        (``DEPOSIT_DEADLINE_PASSED``, 409), as no account the PG issues would
        close in time.
        """
        hours = int((order.deposit_deadline - timezone.now()).total_seconds() // 3600)
        if hours < 1:
            raise OperationRefused(
                _("A bank transfer can no longer arrive in time for this order. Please choose another way to pay."),
                code="DEPOSIT_DEADLINE_PASSED",
            )
        return hours if maximum is None else min(hours, maximum)

    #: The capability flags :meth:`capabilities` reports.
    CAPABILITIES = (
        "supports_partial_cancel",
        "supports_idempotency_key",
        "signs_webhooks",
        "supports_lookup_by_order",
        "supports_virtual_account",
        "sends_deposit_deadline",
        "requires_confirm_call",
    )

    def capabilities(self) -> dict[str, bool]:
        """The capability flags of this gateway as configured (an option may turn one off), for docs and the admin."""
        return {name: bool(getattr(self, name)) for name in self.CAPABILITIES}
