"""Stripe PaymentIntents, Charges and PaymentMethods: what a buyer's attempt on the hosted page makes of them.

The Session's PaymentIntent is made at the first attempt (as since API
2022-08-01). A card attempt succeeds, is declined (with the test card's
decline code) or asks for 3-D Secure first; the delayed method (a US bank
debit) leaves the PaymentIntent ``processing`` until :meth:`Intents.settle`
says how it ended. Every step records the events Stripe sends for it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from .. import faults
from ..base import Answer, ApiContext
from ..models import SandboxPayment
from . import objects, wire
from .sessions import DELAYED_METHOD
from .wire import StripeError

#: Test cards (docs.stripe.com/testing): number -> (brand, outcome, code, decline_code, message).
#: Outcomes: ``paid``, ``declined``, ``3ds`` (authentication, then paid) and ``3ds_declined``.
TEST_CARDS: dict[str, tuple[str, str, str, str, str]] = {
    "4242424242424242": ("visa", "paid", "", "", ""),
    "4000056655665556": ("visa", "paid", "", "", ""),
    "5555555555554444": ("mastercard", "paid", "", "", ""),
    "378282246310005": ("amex", "paid", "", "", ""),
    "4000004100000000": ("visa", "paid", "", "", ""),  # Korea (docs.stripe.com/testing#international-cards)
    "4000000000000002": ("visa", "declined", "card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("visa", "declined", "card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("visa", "declined", "card_declined", "lost_card", "Your card was declined."),
    "4000000000000069": ("visa", "declined", "expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": ("visa", "declined", "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": (
        "visa",
        "declined",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4000002500003155": ("visa", "3ds", "", "", ""),
    "4000002760003184": ("visa", "3ds", "", "", ""),
    "4000008400001629": ("visa", "3ds_declined", "card_declined", "card_declined", "Your card was declined."),
}
#: A Luhn-valid number that is not a test card (unconfirmed wording, seen in Stripe's test mode).
LIVE_CARD_MESSAGE = "Your card was declined. Your request was in test mode, but used a non test (live) card. For a list of valid test cards, visit: https://stripe.com/docs/testing."
AUTHENTICATION_FAILURE = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new "
    "PaymentMethod to attempt to fulfill this PaymentIntent again."
)


@dataclass(frozen=True)
class PageResult:
    """What happened to a payment attempt on the hosted page."""

    #: ``paid``, ``processing`` (a delayed method), ``declined``, ``action`` (3-D Secure) or ``invalid``.
    kind: str
    message: str = ""
    #: Where the form's error belongs (``card_number``, ``card_expiry`` …) for ``invalid``.
    field: str = ""


class Intents:
    """PaymentIntents, Charges and PaymentMethods; mixed into the emulator."""

    def api_retrieve_intent(self, ctx: ApiContext, fault=None, intent_id: str = "") -> Answer:
        return self._retrieve(ctx, intent_id, "pi_", "payment_intent", wire.INTENT_RETRIEVE_PARAMS)

    def api_retrieve_charge(self, ctx: ApiContext, fault=None, charge_id: str = "") -> Answer:
        return self._retrieve(ctx, charge_id, "ch_", "charge")

    def api_retrieve_method(self, ctx: ApiContext, fault=None, method_id: str = "") -> Answer:
        return self._retrieve(ctx, method_id, "pm_", "payment_method")

    def _ensure_intent(self, row: SandboxPayment, now: datetime) -> SandboxPayment:
        """The Session's PaymentIntent, made at the first payment attempt (since API 2022-08-01)."""
        session = row.state
        if session.get("payment_intent"):
            return self._row(session["payment_intent"], lock=True)
        notes = row.session.get("intent") or {}
        intent_id = wire.random_id("pi")
        intent = objects.made(
            objects.PAYMENT_INTENT,
            id=intent_id,
            amount=session["amount_total"],
            client_secret=f"{intent_id}_secret_{wire.random_id('x', 20)[4:]}",
            created=wire.ts(now),
            currency=session["currency"],
            description=notes.get("description"),
            metadata=dict(notes.get("metadata") or {}),
            payment_method_types=list(session.get("payment_method_types") or ["card"]),
            presentment_details=objects.presentment(session["amount_total"], session["currency"]),
            receipt_email=notes.get("receipt_email"),
            statement_descriptor=notes.get("statement_descriptor"),
        )
        intent_row = self._create(intent, order_id=intent["metadata"].get("order_id", ""), notes={"session": session["id"], "charges": []})
        # unconfirmed: whether an open Session shows its PaymentIntent before completion; it does here.
        session["payment_intent"] = intent_id
        self._save(row)
        self._event("payment_intent.created", intent, now, order_id=intent_row.order_id, origin=row.session.get("webhook_origin", ""))
        return SandboxPayment.objects.select_for_update().get(pk=intent_row.pk)

    def _payment_method(self, now: datetime, *, kind: str, card: dict[str, Any] | None = None, billing: dict[str, Any]) -> dict[str, Any]:
        method = {"id": wire.random_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified", "billing_details": billing}
        method.update(created=wire.ts(now), customer=None, livemode=False, metadata={}, type=kind)
        if kind == "card":
            method["card"] = card
        else:
            method[DELAYED_METHOD] = objects.BANK_ACCOUNT
        self._create(method)
        return method

    def _charge(
        self,
        intent_row: SandboxPayment,
        method: dict[str, Any],
        now: datetime,
        *,
        status: str,
        origin: str,
        failure: tuple[str, str, str] | None = None,
        three_d_secure: dict | None = None,
    ) -> dict[str, Any]:
        intent = intent_row.state
        charge_id = wire.random_id("ch")
        paid = status == "succeeded"
        details: dict[str, Any] = {"type": method["type"]}
        if method["type"] == "card":
            card = method["card"]
            details["card"] = {
                "amount_authorized": intent["amount"] if paid else None,
                "brand": card["brand"],
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass" if paid else "unavailable"},
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "funding": card["funding"],
                "last4": card["last4"],
                "network": card["brand"],
                "three_d_secure": three_d_secure,
                "wallet": None,
            }
        else:
            details[DELAYED_METHOD] = objects.BANK_ACCOUNT
        code, decline_code, message = failure or (None, None, None)
        charge = objects.made(
            objects.CHARGE,
            id=charge_id,
            amount=intent["amount"],
            amount_captured=intent["amount"] if paid else 0,
            balance_transaction=wire.random_id("txn") if paid else None,
            billing_details=method["billing_details"],
            calculated_statement_descriptor=(self.business_name()[:22] or "SANDBOX").upper(),
            captured=paid,
            created=wire.ts(now),
            currency=intent["currency"],
            description=intent.get("description"),
            failure_code=code,
            failure_message=message,
            metadata=dict(intent.get("metadata") or {}),
            outcome=objects.made(objects.DECLINED, reason=decline_code) if status == "failed" else objects.made(objects.APPROVED),
            paid=paid,
            payment_intent=intent["id"],
            payment_method=method["id"],
            payment_method_details=details,
            presentment_details=objects.presentment(intent["amount"], intent["currency"]),
            receipt_email=intent.get("receipt_email"),
            receipt_url=origin + reverse("pgpay_sandbox:stripe-receipt", args=[charge_id]),
            status=status,
        )
        self._create(charge, order_id=intent_row.order_id, notes={"refunds": []})
        intent_row.session.setdefault("charges", []).append(charge_id)
        intent["latest_charge"] = charge_id
        return charge

    def business_name(self) -> str:
        return str(self.config().get("BUSINESS_NAME") or "Sandbox shop")

    # --- what the buyer does on the hosted page ----------------------------------------------

    def attempt_card(self, row: SandboxPayment, form: dict[str, str], now: datetime) -> PageResult:
        """The buyer submits a card on the (locked, open) Session's page."""
        number = re.sub(r"[\s-]", "", form.get("card_number", ""))
        if not number.isdigit() or not 12 <= len(number) <= 19 or not wire.luhn(number):
            return PageResult("invalid", _("Your card number is invalid."), "card_number")
        match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", form.get("card_expiry", ""))
        if not match or not 1 <= int(match.group(1)) <= 12:
            return PageResult("invalid", _("Your card's expiration date is incomplete."), "card_expiry")
        month, year = int(match.group(1)), int(match.group(2))
        year = year + 2000 if year < 100 else year
        if (year, month) < (now.year, now.month):
            return PageResult("invalid", _("Your card's expiration year is in the past."), "card_expiry")
        cvc = form.get("card_cvc", "").strip()
        if not cvc.isdigit() or len(cvc) not in (3, 4):
            return PageResult("invalid", _("Your card's security code is incomplete."), "card_cvc")
        email = form.get("email", "").strip() or row.state.get("customer_email") or ""
        if not wire.EMAIL.match(email):
            return PageResult("invalid", _("Your email address is invalid."), "email")
        brand, outcome, code, decline_code, message = TEST_CARDS.get(
            number, ("visa" if number[0] == "4" else "mastercard", "declined", "card_declined", "test_mode_live_card", LIVE_CARD_MESSAGE)
        )
        fault = faults.take(self.name, "confirm", [row.key, row.order_id])
        if fault is not None:
            # An armed confirm fault declines this attempt whatever the card (decline_code from code=).
            code = str(fault.param("code", "card_declined")) if fault.kind == "decline" else "processing_error"
            decline_code = code if code != "card_declined" else "generic_decline"
            message = str(
                fault.param("message", "Your card was declined." if fault.kind == "decline" else TEST_CARDS["4000000000000119"][4])
            )
            outcome = "declined"
        card = {
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "unchecked"},
            "country": "KR" if number == "4000004100000000" else "US",
            "display_brand": brand,
            "exp_month": month,
            "exp_year": year,
            "fingerprint": hashlib.sha256(number.encode()).hexdigest()[:16],
            "funding": "credit",
            "last4": number[-4:],
            "networks": {"available": [brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        }
        billing = objects.billing(email, form.get("card_name", ""), form.get("country", ""))
        intent_row = self._ensure_intent(row, now)
        method = self._payment_method(now, kind="card", card=card, billing=billing)
        intent = intent_row.state
        intent.update(payment_method=method["id"], last_payment_error=None, payment_method_types=["card"])
        if outcome in ("3ds", "3ds_declined"):
            intent.update(
                status="requires_action",
                next_action={
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {
                        "type": "three_d_secure_redirect",
                        "stripe_js": row.session.get("origin", "") + reverse("pgpay_sandbox:stripe-authenticate", args=[row.key]),
                    },
                },
            )
            intent_row.session["pending_3ds"] = {
                "method": method["id"],
                "then": "declined" if outcome == "3ds_declined" else "paid",
                "failure": [code, decline_code, message],
            }
            self._save(intent_row)
            self._event(
                "payment_intent.requires_action", intent, now, order_id=intent_row.order_id, origin=row.session.get("webhook_origin", "")
            )
            return PageResult("action")
        if outcome == "declined":
            self._decline(row, intent_row, method, now, (code, decline_code, message))
            return PageResult("declined", _decline_text(decline_code, message))
        self._succeed(row, intent_row, method, now, email=email)
        return PageResult("paid")

    def authenticate_3ds(self, row: SandboxPayment, *, complete: bool, now: datetime) -> PageResult:
        """The buyer passes (or fails) the 3-D Secure challenge of the Session's PaymentIntent."""
        intent_row = self._row(row.state.get("payment_intent"), lock=True)
        pending = intent_row.session.pop("pending_3ds", None) if intent_row is not None else None
        if intent_row is None or pending is None or intent_row.state.get("status") != "requires_action":
            return PageResult("invalid", _("There is no authentication to complete."))
        method = self.render(pending["method"])
        intent = intent_row.state
        intent["next_action"] = None
        if not complete:
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "code": "payment_intent_authentication_failure",
                    "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
                    "message": AUTHENTICATION_FAILURE,
                    "payment_method": method,
                    "type": "invalid_request_error",
                },
            )
            self._save(intent_row)
            self._event(
                "payment_intent.payment_failed", intent, now, order_id=intent_row.order_id, origin=row.session.get("webhook_origin", "")
            )
            return PageResult("declined", authentication_failed())
        secure = {
            "authentication_flow": "challenge",
            "electronic_commerce_indicator": "05",
            "result": "authenticated",
            "result_reason": None,
            "transaction_id": wire.random_id("x", 20),
            "version": "2.2.0",
        }
        if pending["then"] == "declined":
            code, decline_code, message = pending["failure"]
            self._decline(row, intent_row, method, now, (code, decline_code, message), three_d_secure=secure)
            return PageResult("declined", _decline_text(decline_code, message))
        self._succeed(row, intent_row, method, now, email=(method.get("billing_details") or {}).get("email") or "", three_d_secure=secure)
        return PageResult("paid")

    def attempt_delayed(self, row: SandboxPayment, form: dict[str, str], now: datetime) -> PageResult:
        """The buyer pays with the delayed method: the Session completes unpaid, the money comes (or not) later."""
        if DELAYED_METHOD not in (row.state.get("payment_method_types") or []):
            return PageResult("invalid", _("This payment method is not available."), "method")
        email = form.get("email", "").strip() or row.state.get("customer_email") or ""
        if not wire.EMAIL.match(email):
            return PageResult("invalid", _("Your email address is invalid."), "email")
        outcome = form.get("delayed_outcome", "manual")
        billing = objects.billing(email, form.get("account_holder", "") or form.get("card_name", ""), form.get("country", ""))
        intent_row = self._ensure_intent(row, now)
        method = self._payment_method(now, kind=DELAYED_METHOD, billing=billing)
        origin = row.session.get("origin", "")
        intent = intent_row.state
        intent.update(payment_method=method["id"], last_payment_error=None, status="processing", payment_method_types=[DELAYED_METHOD])
        charge = self._charge(intent_row, method, now, status="pending", origin=origin)
        due = None
        if outcome not in ("", "manual"):
            succeed, _sep, seconds = outcome.partition(":")
            try:
                delay = max(float(seconds or 0), 0.0)
            except ValueError:
                delay = 0.0
            due = now + timedelta(seconds=delay)
            intent_row.session["settle"] = {"at": due.isoformat(), "succeed": succeed != "fail"}
        self._save(intent_row, due_at=due)
        webhook_origin = row.session.get("webhook_origin", "")
        self._event("charge.pending", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event("payment_intent.processing", intent, now, order_id=intent_row.order_id, origin=webhook_origin)
        session = row.state
        session.update(status="complete", payment_status="unpaid", customer_details=objects.customer_details(billing), url=None)
        session["collected_information"] = dict(objects.COLLECTED_INFORMATION)
        self._save(row, due_at=None)
        self._event("checkout.session.completed", session, now, order_id=row.order_id, origin=webhook_origin)
        return PageResult("processing")

    def _succeed(
        self,
        row: SandboxPayment,
        intent_row: SandboxPayment,
        method: dict[str, Any],
        now: datetime,
        *,
        email: str,
        three_d_secure: dict | None = None,
    ) -> None:
        origin = row.session.get("origin", "")
        webhook_origin = row.session.get("webhook_origin", "")
        charge = self._charge(intent_row, method, now, status="succeeded", origin=origin, three_d_secure=three_d_secure)
        intent = intent_row.state
        intent.update(status="succeeded", amount_received=intent["amount"], next_action=None, last_payment_error=None)
        self._save(intent_row)
        self._event("charge.succeeded", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event("payment_intent.succeeded", intent, now, order_id=intent_row.order_id, origin=webhook_origin)
        session = row.state
        session.update(
            status="complete", payment_status="paid", customer_details=objects.customer_details(method["billing_details"]), url=None
        )
        session["collected_information"] = dict(objects.COLLECTED_INFORMATION)
        self._save(row, due_at=None)
        self._event("checkout.session.completed", session, now, order_id=row.order_id, origin=webhook_origin)

    def _decline(
        self,
        row: SandboxPayment,
        intent_row: SandboxPayment,
        method: dict[str, Any],
        now: datetime,
        failure: tuple[str, str, str],
        three_d_secure: dict | None = None,
    ) -> None:
        code, decline_code, message = failure
        webhook_origin = row.session.get("webhook_origin", "")
        charge = self._charge(
            intent_row, method, now, status="failed", origin=row.session.get("origin", ""), failure=failure, three_d_secure=three_d_secure
        )
        intent = intent_row.state
        intent.update(
            status="requires_payment_method",
            next_action=None,
            last_payment_error={
                "charge": charge["id"],
                "code": code,
                "decline_code": decline_code,
                "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
                "message": message,
                "payment_method": method,
                "type": "card_error",
            },
        )
        self._save(intent_row)
        self._event("charge.failed", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event("payment_intent.payment_failed", intent, now, order_id=intent_row.order_id, origin=webhook_origin)

    def settle(self, intent_row: SandboxPayment, now: datetime, *, succeed: bool) -> None:
        """A ``processing`` PaymentIntent (the delayed method) succeeds or fails; the Session's async event follows."""
        intent = intent_row.state
        if intent.get("status") != "processing":
            raise StripeError(400, f"This PaymentIntent's status is {intent.get('status')}, not processing.")
        intent_row.session.pop("settle", None)
        session_row = self._row(intent_row.session.get("session"), lock=True)
        webhook_origin = session_row.session.get("webhook_origin", "") if session_row else ""
        charge_row = self._row(intent.get("latest_charge"), lock=True)
        charge = charge_row.state
        if succeed:
            charge.update(
                status="succeeded", paid=True, captured=True, amount_captured=charge["amount"], balance_transaction=wire.random_id("txn")
            )
            intent.update(status="succeeded", amount_received=intent["amount"])
        else:
            charge.update(
                status="failed",
                failure_code="insufficient_funds",
                failure_message="The customer's account has insufficient funds to cover this payment.",
                outcome={
                    **charge["outcome"],
                    "network_status": "declined_by_network",
                    "type": "issuer_declined",
                    "seller_message": "The bank returned the decline code `insufficient_funds`.",
                },
            )
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "charge": charge["id"],
                    "code": "payment_intent_payment_attempt_failed",
                    "doc_url": "https://stripe.com/docs/error-codes/payment-intent-payment-attempt-failed",
                    "message": "The latest payment attempt of this PaymentIntent has failed or been canceled, and the attached payment method has been removed. You can try confirming again with a new payment method.",
                    "type": "invalid_request_error",
                },
            )
        self._save(charge_row)
        self._save(intent_row, due_at=None)
        self._event("charge.succeeded" if succeed else "charge.failed", charge, now, order_id=intent_row.order_id, origin=webhook_origin)
        self._event(
            "payment_intent.succeeded" if succeed else "payment_intent.payment_failed",
            intent,
            now,
            order_id=intent_row.order_id,
            origin=webhook_origin,
        )
        if session_row is not None:
            if succeed:
                session_row.state["payment_status"] = "paid"
                self._save(session_row)
            kind = "checkout.session.async_payment_succeeded" if succeed else "checkout.session.async_payment_failed"
            self._event(kind, session_row.state, now, order_id=session_row.order_id, origin=webhook_origin)

    # --- Refunds ---------------------------------------------------------------------------


def _decline_text(decline_code: str, message: str) -> str:
    """What the page tells the buyer (translated for the codes the test cards produce)."""
    texts = {
        "generic_decline": _("Your card was declined."),
        "insufficient_funds": _("Your card has insufficient funds."),
        "lost_card": _("Your card was declined."),
        "card_declined": _("Your card was declined."),
        "expired_card": _("Your card has expired."),
        "incorrect_cvc": _("Your card's security code is incorrect."),
        "processing_error": _("An error occurred while processing your card. Try again in a little bit."),
        "test_mode_live_card": _("Your card was declined. This is a sandbox: use a test card such as 4242 4242 4242 4242."),
    }
    return texts.get(decline_code, message)


def authentication_failed() -> str:
    """What the page says after a failed 3-D Secure challenge (Stripe's wording)."""
    return _("We are unable to authenticate your payment method. Please choose a different payment method and try again.")
