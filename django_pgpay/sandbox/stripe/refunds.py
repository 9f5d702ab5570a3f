"""Stripe Refunds: ``POST /v1/refunds`` on a PaymentIntent's (or a Charge's) succeeded Charge, and reading them back.

A refund gives back any part of what is left of the Charge (the rest when no
``amount`` is given); more than is left is ``amount_too_large``, nothing left
``charge_already_refunded``. A missing object named by ``payment_intent`` or
``charge`` is a 400 ``resource_missing`` naming that parameter, as at Stripe.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from .. import lifecycle
from ..base import Answer, ApiContext
from ..models import SandboxPayment
from . import objects, wire
from .wire import StripeError

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
#: The sandbox lifecycle's refusals of a refund in Stripe's words: (code, param, message).
REFUSALS = {
    lifecycle.Refusal.ALREADY_CANCELED: ("charge_already_refunded", None, "Charge {charge} has already been refunded."),
    lifecycle.Refusal.OVER_BALANCE: (
        "amount_too_large",
        "amount",
        "Refund amount ({asked}) is greater than unrefunded amount on charge ({left})",
    ),
    lifecycle.Refusal.NOT_CANCELABLE: ("charge_not_refundable", "charge", "Charge {charge} has not succeeded and cannot be refunded."),
    lifecycle.Refusal.INVALID_AMOUNT: ("parameter_invalid_integer", "amount", "Invalid positive integer"),
}


class Refunds:
    """The refund endpoints and the refund itself (also made from the Dashboard); mixed into the emulator."""

    def api_create_refund(self, ctx: ApiContext, fault=None) -> Answer:
        p = ctx.data
        wire.unknown_params(p, wire.REFUND_PARAMS)
        expand = wire.expand_param(p)
        amount = None
        if p.get("amount") not in (None, ""):
            amount = wire.integer(p["amount"], "amount", minimum=1)
        reason = p.get("reason")
        if reason not in (None, "") and reason not in REFUND_REASONS:
            raise wire.invalid("reason", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
        meta = wire.metadata(p.get("metadata"))
        for name in ("customer", "origin", "instructions_email"):
            if p.get(name) not in (None, ""):
                raise wire.not_emulated(name, f"refunds with {name}")
        charge_row = self._charge_to_refund(p.get("payment_intent"), p.get("charge"))
        refund = self.refund(charge_row, amount, ctx.now, metadata=meta, reason=reason or None, ctx=ctx)
        return wire.answer(200, self.expand(refund, expand))

    def _charge_to_refund(self, intent_id: Any, charge_id: Any) -> SandboxPayment:
        """The (locked) Charge a refund draws on, found by ``payment_intent`` or ``charge``."""
        if intent_id in (None, "") and charge_id in (None, ""):
            # unconfirmed wording.
            raise wire.missing("payment_intent", "One of `charge` or `payment_intent` is required.")
        if intent_id not in (None, ""):
            intent_row = self._row(intent_id)
            if intent_row is None or not str(intent_id).startswith("pi_"):
                raise wire.no_such_param("payment_intent", intent_id, "payment_intent")
            intent = intent_row.state
            if intent.get("status") != "succeeded" or not intent.get("latest_charge"):
                raise StripeError(
                    400,
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            if charge_id not in (None, "") and charge_id != intent["latest_charge"]:
                raise wire.invalid("charge", "The charge does not belong to this PaymentIntent.")
            charge_id = intent["latest_charge"]
        charge_row = self._row(charge_id, lock=True)
        if charge_row is None or not str(charge_id).startswith("ch_"):
            raise wire.no_such_param("charge", charge_id, "charge")
        return charge_row

    def refund(
        self, charge_row: SandboxPayment, amount: int | None, now: datetime, *, metadata: dict[str, str], **how: Any
    ) -> dict[str, Any]:
        """Give back ``amount`` (None: what is left) of a locked succeeded Charge; ``refund.created`` and ``charge.refunded``.

        ``how``: the refund's ``reason`` and the API call's ``ctx`` (None for a refund made in the Dashboard).
        """
        charge = charge_row.state
        amount = _refundable(charge, amount)
        kind = charge["payment_method_details"]["type"]
        refund = objects.made(
            objects.REFUND,
            id=wire.random_id("re"),
            amount=amount,
            balance_transaction=wire.random_id("txn"),
            charge=charge["id"],
            created=wire.ts(now),
            currency=charge["currency"],
            destination_details=copy.deepcopy(objects.REFUND_DESTINATIONS.get(kind) or objects.REFUND_DESTINATIONS["card"]),
            metadata=metadata,
            payment_intent=charge["payment_intent"],
            reason=how.get("reason"),
        )
        refund_row = self._create(refund, order_id=charge_row.order_id)
        previous = {"amount_refunded": charge["amount_refunded"]}
        charge["amount_refunded"] += amount
        if charge["amount_refunded"] == charge["amount"]:
            previous["refunded"] = False
            charge["refunded"] = True
        charge_row.session.setdefault("refunds", []).append(refund["id"])
        self._save(charge_row)
        intent_row = self._row(charge.get("payment_intent"))
        session_row = self._row(intent_row.session.get("session")) if intent_row is not None else None
        self._tell(session_row, now, ("refund.created", refund_row), ctx=how.get("ctx"))
        origin = session_row.session.get("webhook_origin", "") if session_row is not None else ""
        self._event("charge.refunded", charge, now, order_id=charge_row.order_id, ctx=how.get("ctx"), previous=previous, origin=origin)
        return copy.deepcopy(refund)

    def api_retrieve_refund(self, ctx: ApiContext, fault=None, refund_id: str = "") -> Answer:
        return self._retrieve(ctx, refund_id, "re_", "refund")


def _refundable(charge: dict[str, Any], amount: int | None) -> int:
    """What a refund of ``amount`` (None: the rest) gives back: the sandbox's lifecycle decides, Stripe's words refuse."""
    stage = lifecycle.Stage.PAID if charge.get("status") == "succeeded" else lifecycle.Stage.PENDING
    ledger = lifecycle.Ledger(amount=charge["amount"], canceled=charge["amount_refunded"], stage=stage)
    try:
        return int(lifecycle.plan_cancel(ledger, amount).amount)
    except lifecycle.Refused as refused:
        code, param, message = REFUSALS.get(refused.refusal, (refused.refusal.value, None, "{detail}"))
        left = ledger.balance
        facts = {"charge": charge["id"], "detail": refused.detail, "left": wire.amount_text(left, charge["currency"])}
        facts["asked"] = wire.amount_text(amount if amount is not None else left, charge["currency"])
        raise StripeError(400, message.format(**facts), code=code, param=param) from refused
