"""Stripe's objects as the sandbox keeps them: their shapes, their rows, reading them back with ``expand``.

Every object is one :class:`~django_pgpay.sandbox.models.SandboxPayment` row
keyed by its id, holding the object exactly as the API returns it (``state``)
and the sandbox's own notes about it (``session``: the Session's line items,
a PaymentIntent's charges …). The shapes below are those of the API version
the sandbox announces (``2026-10-28.endive``, the official SDK 16's pin; the
``2025-03-31.basil`` changes apply: a Session has no ``shipping_details``
(see ``collected_information``), a PaymentIntent and a Charge no
``invoice``; Sessions and PaymentIntents carry ``presentment_details``).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from django.db import transaction

from .. import clock
from ..models import SandboxPayment
from . import wire

#: Expandable fields per object: the object type they hold (None: valid at Stripe, not emulated).
EXPANDABLE: dict[str, dict[str, str | None]] = {
    "checkout.session": {
        "payment_intent": "payment_intent",
        "line_items": "line_items",
        "customer": None,
        "invoice": None,
        "payment_link": None,
        "setup_intent": None,
        "subscription": None,
    },
    "payment_intent": {
        "latest_charge": "charge",
        "payment_method": "payment_method",
        "customer": None,
        "review": None,
        "on_behalf_of": None,
        "application": None,
    },
    "charge": {
        "payment_intent": "payment_intent",
        "balance_transaction": None,
        "customer": None,
        "review": None,
        "application": None,
        "on_behalf_of": None,
        "source_transfer": None,
        "transfer": None,
    },
    "refund": {
        "charge": "charge",
        "payment_intent": "payment_intent",
        "balance_transaction": None,
        "failure_balance_transaction": None,
        "source_transfer_reversal": None,
        "transfer_reversal": None,
    },
    "payment_method": {"customer": None},
    "event": {},
}

#: A Checkout Session's fields that the sandbox never changes (``mode=payment`` on the hosted page).
SESSION = {
    "object": "checkout.session",
    "adaptive_pricing": {"enabled": False},
    "after_expiration": None,
    "allow_promotion_codes": None,
    "automatic_tax": {"enabled": False, "liability": None, "status": None},
    "billing_address_collection": None,
    "client_secret": None,
    # null until the buyer finishes (unconfirmed; see COLLECTED_INFORMATION).
    "collected_information": None,
    "consent": None,
    "consent_collection": None,
    "custom_fields": [],
    "custom_text": {"after_submit": None, "shipping_address": None, "submit": None, "terms_of_service_acceptance": None},
    "customer": None,
    "customer_creation": "if_required",
    "customer_details": None,
    "invoice": None,
    "invoice_creation": {
        "enabled": False,
        "invoice_data": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": None,
            "metadata": {},
            "rendering_options": None,
        },
    },
    "livemode": False,
    "mode": "payment",
    "payment_intent": None,
    "payment_link": None,
    "payment_method_collection": "if_required",
    "payment_method_configuration_details": None,
    "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
    "payment_status": "unpaid",
    "phone_number_collection": {"enabled": False},
    "recovered_from": None,
    "saved_payment_method_options": None,
    "setup_intent": None,
    "shipping_address_collection": None,
    "shipping_cost": None,
    "shipping_options": [],
    "status": "open",
    "submit_type": None,
    "subscription": None,
    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
}
#: What a finished Session collected (no shipping address: the sandbox's page does not ask for one).
COLLECTED_INFORMATION = {"business_name": None, "individual_name": None, "shipping_details": None}

#: A PaymentIntent's fields that start the same for every Session.
PAYMENT_INTENT = {
    "object": "payment_intent",
    "amount_capturable": 0,
    "amount_details": {"tip": {}},
    "amount_received": 0,
    "application": None,
    "application_fee_amount": None,
    "automatic_payment_methods": None,
    "canceled_at": None,
    "cancellation_reason": None,
    "capture_method": "automatic_async",
    "confirmation_method": "automatic",
    "customer": None,
    "last_payment_error": None,
    "latest_charge": None,
    "livemode": False,
    "next_action": None,
    "on_behalf_of": None,
    "payment_method": None,
    "payment_method_configuration_details": None,
    "payment_method_options": {
        "card": {"installments": None, "mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
    },
    "processing": None,
    "review": None,
    "setup_future_usage": None,
    "shipping": None,
    "source": None,
    "statement_descriptor_suffix": None,
    "status": "requires_payment_method",
    "transfer_data": None,
    "transfer_group": None,
}

#: A Charge's fields that the sandbox never changes.
CHARGE = {
    "object": "charge",
    "amount_refunded": 0,
    "application": None,
    "application_fee": None,
    "application_fee_amount": None,
    "customer": None,
    "disputed": False,
    "failure_balance_transaction": None,
    "fraud_details": {},
    "livemode": False,
    "on_behalf_of": None,
    "receipt_number": None,
    "refunded": False,
    "review": None,
    "shipping": None,
    "source_transfer": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "transfer_data": None,
    "transfer_group": None,
}
#: A Charge's ``outcome``: approved, or declined by the issuer (``reason`` is the decline code).
APPROVED = {
    "network_status": "approved_by_network",
    "reason": None,
    "risk_level": "normal",
    "risk_score": 21,
    "seller_message": "Payment complete.",
    "type": "authorized",
}
DECLINED = {
    "network_status": "declined_by_network",
    "reason": None,
    "risk_level": "normal",
    "risk_score": 21,
    "seller_message": "The bank did not return any further details with this decline.",
    "type": "issuer_declined",
}

#: A Refund's fields that the sandbox never changes (a refund succeeds at once).
REFUND = {
    "object": "refund",
    "receipt_number": None,
    "source_transfer_reversal": None,
    "status": "succeeded",
    "transfer_reversal": None,
}
#: A Refund's ``destination_details`` by the Charge's payment method type.
REFUND_DESTINATIONS = {
    "card": {"card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}, "type": "card"},
    "us_bank_account": {"type": "us_bank_account", "us_bank_account": {"reference": None, "reference_status": "pending"}},
}

#: The one-time Price ``price_data`` makes on a line item.
PRICE = {
    "object": "price",
    "active": False,
    "billing_scheme": "per_unit",
    "custom_unit_amount": None,
    "livemode": False,
    "lookup_key": None,
    "metadata": {},
    "nickname": None,
    "recurring": None,
    "tax_behavior": "unspecified",
    "tiers_mode": None,
    "transform_quantity": None,
    "type": "one_time",
}

#: The delayed method's bank account (a US bank debit).
BANK_ACCOUNT = {
    "account_holder_type": "individual",
    "account_type": "checking",
    "bank_name": "STRIPE TEST BANK",
    "financial_connections_account": None,
    "fingerprint": "sandboxBankAcct01",
    "last4": "6789",
    "routing_number": "110000000",
}


def made(template: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A new object: a deep copy of ``template`` with ``fields`` set, keyed as Stripe writes it (id, object, then A–Z)."""
    obj = {**copy.deepcopy(template), **fields}
    head = {key: obj.pop(key) for key in ("id", "object") if key in obj}
    return {**head, **dict(sorted(obj.items()))}


def presentment(amount: int, currency: str) -> dict[str, Any]:
    """``presentment_details``: what the buyer was shown (no Adaptive Pricing, so the integration's own amount)."""
    return {"presentment_amount": amount, "presentment_currency": currency}


def billing(email: str, name: str, country: str) -> dict[str, Any]:
    address = {"city": None, "country": (country or "KR")[:2].upper(), "line1": None, "line2": None, "postal_code": None, "state": None}
    return {"address": address, "email": email or None, "name": name.strip()[:100] or None, "phone": None, "tax_id": None}


def customer_details(billing: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": billing["address"],
        "email": billing["email"],
        "name": billing["name"],
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


class ObjectStore:
    """Rows of Stripe objects and reading them back (with ``expand``); mixed into the emulator."""

    def _row(self, key: Any, *, lock: bool = False) -> SandboxPayment | None:
        if not isinstance(key, str) or not key or len(key) > 200:
            return None
        rows = SandboxPayment.objects.filter(pg=self.name, key=key)
        if lock:
            rows = rows.select_for_update()
        return rows.first()

    def _create(
        self, obj: dict[str, Any], *, order_id: str = "", notes: dict[str, Any] | None = None, due_at: datetime | None = None
    ) -> SandboxPayment:
        return SandboxPayment.objects.create(
            pg=self.name,
            key=obj["id"],
            order_id=(order_id or "")[:100],
            status=str(obj.get("status") or obj.get("object") or "")[:32],
            state=obj,
            session=notes or {},
            due_at=due_at,
        )

    def _save(self, row: SandboxPayment, *, due_at: datetime | None | bool = False) -> None:
        row.status = str(row.state.get("status") or row.state.get("object") or "")[:32]
        fields = ["state", "session", "status", "updated_at"]
        if due_at is not False:
            row.due_at = due_at
            fields.append("due_at")
        row.save(update_fields=fields)

    def _order_of(self, obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        return str(obj.get("client_reference_id") or meta.get("order_id") or "")

    def _objects(self, prefix: str, limit: int = 5000) -> list[dict[str, Any]]:
        """The newest ``limit`` objects whose ids start with ``prefix`` (newest first)."""
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith=prefix).order_by("-id")
        return [row.state for row in rows[:limit]]

    def render(self, key: str) -> dict[str, Any] | None:
        """The object ``key`` as the API returns it now (an open Session past its expiry expires first)."""
        row = self._row(key)
        if row is None:
            return None
        if key.startswith("cs_") and row.state.get("status") == "open":
            with transaction.atomic():
                row = self._row(key, lock=True)
                self.refresh_session(row, clock.now())
        return copy.deepcopy(row.state)

    def _retrieve(self, ctx, key: str, prefix: str, kind: str, allowed: frozenset[str] = wire.RETRIEVE_PARAMS):
        """``GET /v1/<objects>/{id}``: the object, expanded, or 404 ``resource_missing``."""
        expand = wire.expand_param(self.query(ctx, allowed))
        obj = self.render(key) if key.startswith(prefix) else None
        if obj is None:
            raise wire.no_such(kind, key, "id")
        return wire.answer(200, self.expand(obj, expand))

    def expand(self, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        """Replace ids by objects along each dotted ``expand`` path (400 for what Stripe cannot expand)."""
        for dotted in paths:
            if not isinstance(dotted, str) or not dotted:
                raise wire.invalid("expand", "Invalid array")
            parts = dotted.split(".")
            if len(parts) > 4:
                raise wire.invalid("expand", f"You cannot expand more than 4 levels of a property. Property: {dotted}")
            self._expand_one(obj, parts, dotted)
        return obj

    def _expand_one(self, obj: dict[str, Any], parts: list[str], dotted: str) -> None:
        if not isinstance(obj, dict):
            return
        head, rest = parts[0], parts[1:]
        if obj.get("object") in ("list", "search_result") and head == "data":
            for item in obj.get("data") or []:
                if rest:
                    self._expand_one(item, rest, dotted)
            return
        fields = EXPANDABLE.get(str(obj.get("object")), {})
        if head not in fields:
            raise wire.invalid("expand", f"This property cannot be expanded ({dotted}).")
        kind = fields[head]
        if head == "line_items" and kind == "line_items":
            if not isinstance(obj.get("line_items"), dict):
                obj["line_items"] = self._line_items_list(obj["id"], {"limit": "10"})
            return
        value = obj.get(head)
        if isinstance(value, str) and value:
            if kind is None:
                raise wire.not_emulated("expand", f"expanding {dotted}")
            found = self.render(value)
            if found is None:
                return
            obj[head] = found
            value = found
        if rest and isinstance(value, dict):
            self._expand_one(value, rest, dotted)
