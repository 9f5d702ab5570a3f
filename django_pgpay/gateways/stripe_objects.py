"""Reading Stripe's objects: a Checkout Session, a PaymentIntent and its Refunds, as a :class:`PaymentResult`.

:class:`StripeObjects` is a part of :class:`~django_pgpay.gateways.stripe.StripeGateway`
(its base class): the pure reading of what Stripe answered, apart from the calls.
A reply we cannot read is an unknown outcome, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from ..exceptions import GatewayUnavailable
from ..money import MoneyError, from_minor, normalize_currency
from .results import CancelEntry, PaymentResult, PaymentState
from .stripe_wire import latest_charge
from .stripe_wire import order_number as order_of

#: Key of the order's ``pg_data`` that holds its current Checkout Session id.
PG_DATA_SESSION = "stripe_session_id"
#: Key of a Refund's ``metadata`` that holds the ledger row's idempotency key.
METADATA_KEY = "idempotency_key"

#: PaymentIntent ``status`` -> our PaymentState (for lookups by PaymentIntent).
INTENT_STATUSES: dict[str, PaymentState] = {
    "requires_payment_method": PaymentState.PENDING,
    "requires_confirmation": PaymentState.PENDING,
    "requires_action": PaymentState.PENDING,
    "processing": PaymentState.PENDING,
    "requires_capture": PaymentState.PENDING,
    "succeeded": PaymentState.APPROVED,
    "canceled": PaymentState.FAILED,
}
#: Refund statuses whose amount has left the payment (``failed`` and ``canceled`` have not).
REFUNDED_STATUSES = frozenset({"succeeded", "pending", "requires_action"})
#: Refund statuses of a refund that gave nothing back (a ``pending`` one may end so: a closed card).
FAILED_REFUND_STATUSES = frozenset({"failed", "canceled"})


def _timestamp(value) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    return None


class StripeObjects:
    """Stripe's objects as PaymentResults (a base of :class:`~django_pgpay.gateways.stripe.StripeGateway`)."""

    def _amount(self, value, currency: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MoneyError(f"{value!r} is not an amount in minor units")
        return from_minor(value, currency, "stripe")

    def session_result(
        self, session: Mapping[str, Any], *, refunds: Sequence[Mapping[str, Any]] = (), state: PaymentState | None = None
    ) -> PaymentResult:
        """Read a Checkout Session (its PaymentIntent expanded or an id); a Session we cannot read is an unknown outcome."""
        try:
            session_id, status = str(session["id"]), str(session["status"])
            paid = str(session.get("payment_status") or "")
            currency = normalize_currency(str(session["currency"]))
            amount = self._amount(session["amount_total"], currency)
            intent = session.get("payment_intent")
            intent_data = intent if isinstance(intent, Mapping) else {}
            intent_id = str(intent_data.get("id") or "") if intent_data else str(intent or "")
            if state is None:
                if status == "open":
                    state = PaymentState.PENDING
                elif status == "expired":
                    state = PaymentState.EXPIRED
                elif status == "complete" and paid in ("paid", "no_payment_required"):
                    state = PaymentState.APPROVED
                elif status == "complete" and intent_data.get("status") in ("requires_payment_method", "canceled"):
                    state = PaymentState.FAILED  # a delayed method that failed
                elif status == "complete":
                    state = PaymentState.PENDING  # a delayed method under way
                else:
                    raise ValueError(f"unknown Checkout Session status {status!r}")
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self.malformed("Checkout Session", exc, session) from exc
        result = self._result(
            state,
            payment_id=intent_id or session_id,
            order_number=order_of(session),
            amount=amount,
            currency=currency,
            intent=intent_data,
            pg_data={PG_DATA_SESSION: session_id},
            raw=session,
        )
        return self._with_refunds(result, refunds)

    def intent_result(self, intent: Mapping[str, Any], *, refunds: Sequence[Mapping[str, Any]] = ()) -> PaymentResult:
        """Read a PaymentIntent (its latest Charge expanded or an id)."""
        try:
            state = INTENT_STATUSES[str(intent["status"])]
            currency = normalize_currency(str(intent["currency"]))
            amount = self._amount(intent["amount"], currency)
            intent_id = str(intent["id"])
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self.malformed("PaymentIntent", exc, intent) from exc
        result = self._result(
            state,
            payment_id=intent_id,
            order_number=order_of(intent),
            amount=amount,
            currency=currency,
            intent=intent,
            pg_data={},
            raw=intent,
        )
        return self._with_refunds(result, refunds)

    def _result(self, state, *, payment_id, order_number, amount, currency, intent, pg_data, raw) -> PaymentResult:
        charge = latest_charge(intent)
        details = charge.get("payment_method_details") if isinstance(charge.get("payment_method_details"), Mapping) else {}
        error = intent.get("last_payment_error") if isinstance(intent.get("last_payment_error"), Mapping) else {}
        failure_code = failure_message = ""
        if state == PaymentState.FAILED:
            failure_code = str(error.get("decline_code") or error.get("code") or intent.get("cancellation_reason") or "")
            failure_message = str(error.get("message") or "")
        return PaymentResult(
            state=state,
            payment_id=payment_id,
            order_number=order_number,
            amount=amount,
            currency=currency,
            method=str(details.get("type") or ""),
            receipt_url=str(charge.get("receipt_url") or ""),
            approved_at=_timestamp(charge.get("created")) if state == PaymentState.APPROVED else None,
            failure_code=failure_code[:100],
            failure_message=failure_message[:500],
            pg_data=pg_data,
            raw=dict(raw),
        )

    def _with_refunds(self, result: PaymentResult, refunds: Sequence[Mapping[str, Any]]) -> PaymentResult:
        """Each refund that took money back as a :class:`CancelEntry` (our ledger key as its reference)."""
        if not refunds or not result.state.is_paid:
            return result
        entries, failed = [], []
        try:
            for refund in refunds:
                status = str(refund.get("status") or "")
                if status not in REFUNDED_STATUSES and status not in FAILED_REFUND_STATUSES:
                    continue
                if normalize_currency(str(refund["currency"])) != result.currency:
                    raise ValueError("a refund in another currency")
                metadata = refund.get("metadata") if isinstance(refund.get("metadata"), Mapping) else {}
                entry = CancelEntry(
                    pg_cancel_id=str(refund["id"]),
                    amount=self._amount(refund["amount"], result.currency),
                    canceled_at=_timestamp(refund.get("created")),
                    reference=str(metadata.get(METADATA_KEY) or ""),
                    failure=str(refund.get("failure_reason") or status)[:200] if status in FAILED_REFUND_STATUSES else "",
                )
                (entries if status in REFUNDED_STATUSES else failed).append(entry)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self.malformed("Refund", exc, {"data": list(refunds)}) from exc
        entries.sort(key=lambda e: (e.canceled_at or datetime.min.replace(tzinfo=dt_timezone.utc), e.pg_cancel_id))
        canceled = sum((e.amount for e in entries), Decimal(0))
        if canceled > result.amount:
            raise GatewayUnavailable(f"{self.alias}: refunds exceed the payment", gateway=self.alias, code="MALFORMED_REPLY")
        state = result.state
        if canceled:
            state = PaymentState.CANCELED if canceled == result.amount else PaymentState.PARTIAL_CANCELED
        return replace(result, state=state, canceled_amount=canceled, cancels=tuple(entries), failed_cancels=tuple(failed))


__all__ = ["FAILED_REFUND_STATUSES", "INTENT_STATUSES", "REFUNDED_STATUSES", "StripeObjects"]
