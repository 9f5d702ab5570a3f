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
from django.utils.translation import gettext_lazy

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
#: ``last_payment_error`` after a failed 3-D Secure challenge (``payment_method`` is added).
AUTHENTICATION_ERROR = {
    "code": "payment_intent_authentication_failure",
    "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
    "message": (
        "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new "
        "PaymentMethod to attempt to fulfill this PaymentIntent again."
    ),
    "type": "invalid_request_error",
}
#: ``last_payment_error`` when a delayed payment fails (``charge`` is added).
ATTEMPT_FAILED = {
    "code": "payment_intent_payment_attempt_failed",
    "doc_url": "https://stripe.com/docs/error-codes/payment-intent-payment-attempt-failed",
    "message": (
        "The latest payment attempt of this PaymentIntent has failed or been canceled, and the attached payment method has "
        "been removed. You can try confirming again with a new payment method."
    ),
    "type": "invalid_request_error",
}
#: What a failed delayed payment writes on its Charge (and into its ``outcome``).
DELAYED_FAILURE = {
    "status": "failed",
    "failure_code": "insufficient_funds",
    "failure_message": "The customer's account has insufficient funds to cover this payment.",
}
DELAYED_FAILURE_OUTCOME = {
    "network_status": "declined_by_network",
    "type": "issuer_declined",
    "seller_message": "The bank returned the decline code `insufficient_funds`.",
}
#: A passed 3-D Secure challenge on the Charge (``transaction_id`` is added).
THREE_D_SECURE = {
    "authentication_flow": "challenge",
    "electronic_commerce_indicator": "05",
    "result": "authenticated",
    "result_reason": None,
    "version": "2.2.0",
}
#: The card fields a Charge's ``payment_method_details.card`` copies from the PaymentMethod.
CARD_FIELDS = ("brand", "country", "exp_month", "exp_year", "funding", "last4")
#: What the page tells the buyer for a decline code (translated for the codes the test cards produce).
DECLINE_TEXTS = {
    "generic_decline": gettext_lazy("Your card was declined."),
    "insufficient_funds": gettext_lazy("Your card has insufficient funds."),
    "lost_card": gettext_lazy("Your card was declined."),
    "card_declined": gettext_lazy("Your card was declined."),
    "expired_card": gettext_lazy("Your card has expired."),
    "incorrect_cvc": gettext_lazy("Your card's security code is incorrect."),
    "processing_error": gettext_lazy("An error occurred while processing your card. Try again in a little bit."),
    "test_mode_live_card": gettext_lazy("Your card was declined. This is a sandbox: use a test card such as 4242 4242 4242 4242."),
}


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
        self._tell(row, now, ("payment_intent.created", intent_row))
        return SandboxPayment.objects.select_for_update().get(pk=intent_row.pk)

    def _payment_method(self, now: datetime, kind: str, billing: dict[str, Any], card: dict[str, Any] | None = None) -> dict[str, Any]:
        method = {"id": wire.random_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified", "billing_details": billing}
        method.update(created=wire.ts(now), customer=None, livemode=False, metadata={}, type=kind)
        method[kind] = card if kind == "card" else objects.BANK_ACCOUNT
        self._create(method)
        return method

    def _charge(self, row: SandboxPayment, intent_row: SandboxPayment, method: dict[str, Any], now: datetime, **how: Any) -> SandboxPayment:
        """A Charge of the PaymentIntent: ``status``, and ``failure`` (code, decline code, message) or ``secure`` (3-D Secure)."""
        intent, status = intent_row.state, how["status"]
        charge_id, paid = wire.random_id("ch"), how["status"] == "succeeded"
        details: dict[str, Any] = {"type": method["type"], method["type"]: objects.BANK_ACCOUNT}
        if method["type"] == "card":
            card = {name: method["card"][name] for name in CARD_FIELDS}
            checks = {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass" if paid else "unavailable"}
            card.update(amount_authorized=intent["amount"] if paid else None, checks=checks, network=card["brand"], wallet=None)
            details["card"] = {**card, "three_d_secure": how.get("secure")}
        code, decline_code, message = how.get("failure") or (None, None, None)
        charge = objects.made(
            objects.CHARGE,
            id=charge_id,
            amount=intent["amount"],
            amount_captured=intent["amount"] if paid else 0,
            balance_transaction=wire.random_id("txn") if paid else None,
            billing_details=method["billing_details"],
            calculated_statement_descriptor=(str(self.config().get("BUSINESS_NAME") or "Sandbox shop")[:22] or "SANDBOX").upper(),
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
            receipt_email=intent.get("receipt_email"),
            receipt_url=row.session.get("origin", "") + reverse("pgpay_sandbox:stripe-receipt", args=[charge_id]),
            status=status,
        )
        intent_row.session.setdefault("charges", []).append(charge_id)
        intent["latest_charge"] = charge_id
        return self._create(charge, order_id=intent_row.order_id, notes={"refunds": []})

    def business_name(self) -> str:
        """The shop's name on the hosted pages: ``BUSINESS_NAME``, else "Sandbox shop" in the page's language."""
        return str(self.config().get("BUSINESS_NAME") or _("Sandbox shop"))

    # --- what the buyer does on the hosted page ----------------------------------------------

    def attempt_card(self, row: SandboxPayment, form: dict[str, str], now: datetime) -> PageResult:
        """The buyer submits a card on the (locked, open) Session's page."""
        read = _read_card(form, now)
        if isinstance(read, PageResult):
            return read
        number, month, year = read
        email = form.get("email", "").strip() or row.state.get("customer_email") or ""
        if not wire.EMAIL.match(email):
            return PageResult("invalid", _("Your email address is invalid."), "email")
        brand, outcome, *failure = self._card_outcome(row, number)
        card = {"brand": brand, "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "unchecked"}}
        card.update(country="KR" if number == "4000004100000000" else "US", display_brand=brand, exp_month=month, exp_year=year)
        card.update(fingerprint=hashlib.sha256(number.encode()).hexdigest()[:16], funding="credit", last4=number[-4:])
        card.update(networks={"available": [brand], "preferred": None}, three_d_secure_usage={"supported": True}, wallet=None)
        intent_row = self._ensure_intent(row, now)
        method = self._payment_method(now, "card", objects.billing(email, form.get("card_name", ""), form.get("country", "")), card)
        intent = intent_row.state
        intent.update(payment_method=method["id"], last_payment_error=None, payment_method_types=["card"])
        if outcome in ("3ds", "3ds_declined"):
            stripe_js = row.session.get("origin", "") + reverse("pgpay_sandbox:stripe-authenticate", args=[row.key])
            action = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": stripe_js}}
            intent.update(status="requires_action", next_action=action)
            then = "declined" if outcome == "3ds_declined" else "paid"
            intent_row.session["pending_3ds"] = {"method": method["id"], "then": then, "failure": failure}
            self._save(intent_row)
            self._tell(row, now, ("payment_intent.requires_action", intent_row))
            return PageResult("action")
        if outcome == "declined":
            return self._decline(row, intent_row, method, now, tuple(failure))
        return self._succeed(row, intent_row, method, now)

    def _card_outcome(self, row: SandboxPayment, number: str) -> tuple[str, str, str, str, str]:
        """The test card's (brand, outcome, code, decline code, message); an armed ``confirm`` fault declines any card."""
        brand, outcome, code, decline_code, message = TEST_CARDS.get(
            number, ("visa" if number[0] == "4" else "mastercard", "declined", "card_declined", "test_mode_live_card", LIVE_CARD_MESSAGE)
        )
        fault = faults.take(self.name, "confirm", [row.key, row.order_id])
        if fault is None:
            return brand, outcome, code, decline_code, message
        # The decline_code comes from code= (a decline) or is processing_error (any other fault).
        code = str(fault.param("code", "card_declined")) if fault.kind == "decline" else "processing_error"
        default = "Your card was declined." if fault.kind == "decline" else TEST_CARDS["4000000000000119"][4]
        return brand, "declined", code, code if code != "card_declined" else "generic_decline", str(fault.param("message", default))

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
            intent.update(status="requires_payment_method", last_payment_error={**AUTHENTICATION_ERROR, "payment_method": method})
            self._save(intent_row)
            self._tell(row, now, ("payment_intent.payment_failed", intent_row))
            return PageResult("declined", authentication_failed())
        secure = {**THREE_D_SECURE, "transaction_id": wire.random_id("x", 20)}
        if pending["then"] == "declined":
            return self._decline(row, intent_row, method, now, tuple(pending["failure"]), secure=secure)
        return self._succeed(row, intent_row, method, now, secure=secure)

    def attempt_delayed(self, row: SandboxPayment, form: dict[str, str], now: datetime) -> PageResult:
        """The buyer pays with the delayed method: the Session completes unpaid, the money comes (or not) later."""
        if DELAYED_METHOD not in (row.state.get("payment_method_types") or []):
            return PageResult("invalid", _("This payment method is not available."), "method")
        email = form.get("email", "").strip() or row.state.get("customer_email") or ""
        if not wire.EMAIL.match(email):
            return PageResult("invalid", _("Your email address is invalid."), "email")
        billing = objects.billing(email, form.get("account_holder", "") or form.get("card_name", ""), form.get("country", ""))
        intent_row = self._ensure_intent(row, now)
        method = self._payment_method(now, DELAYED_METHOD, billing)
        intent_row.state.update(
            payment_method=method["id"], last_payment_error=None, status="processing", payment_method_types=[DELAYED_METHOD]
        )
        charge_row = self._charge(row, intent_row, method, now, status="pending")
        due, outcome = None, form.get("delayed_outcome", "manual")
        if outcome not in ("", "manual"):
            succeed, _sep, seconds = outcome.partition(":")
            try:
                delay = max(float(seconds or 0), 0.0)
            except ValueError:
                delay = 0.0
            due = now + timedelta(seconds=delay)
            intent_row.session["settle"] = {"at": due.isoformat(), "succeed": succeed != "fail"}
        self._save(intent_row, due_at=due)
        self._complete(row, "unpaid", billing)
        self._tell(row, now, ("charge.pending", charge_row), ("payment_intent.processing", intent_row), ("checkout.session.completed", row))
        return PageResult("processing")

    def _complete(self, row: SandboxPayment, payment_status: str, billing: dict[str, Any]) -> None:
        """The buyer is done with the Session (its page closes); ``payment_status`` paid or unpaid."""
        details = objects.customer_details(billing)
        row.state.update(status="complete", payment_status=payment_status, customer_details=details, url=None)
        row.state["collected_information"] = dict(objects.COLLECTED_INFORMATION)
        self._save(row, due_at=None)

    def _succeed(self, row: SandboxPayment, intent_row: SandboxPayment, method: dict[str, Any], now: datetime, secure=None) -> PageResult:
        charge_row = self._charge(row, intent_row, method, now, status="succeeded", secure=secure)
        intent = intent_row.state
        intent.update(status="succeeded", amount_received=intent["amount"], next_action=None, last_payment_error=None)
        self._save(intent_row)
        self._complete(row, "paid", method["billing_details"])
        self._tell(
            row, now, ("charge.succeeded", charge_row), ("payment_intent.succeeded", intent_row), ("checkout.session.completed", row)
        )
        return PageResult("paid")

    def _decline(self, row, intent_row: SandboxPayment, method: dict[str, Any], now: datetime, failure: tuple, secure=None) -> PageResult:
        code, decline_code, message = failure
        charge_row = self._charge(row, intent_row, method, now, status="failed", failure=failure, secure=secure)
        error = {"charge": charge_row.key, "code": code, "decline_code": decline_code, "message": message, "type": "card_error"}
        error.update(doc_url=f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}", payment_method=method)
        intent_row.state.update(status="requires_payment_method", next_action=None, last_payment_error=error)
        self._save(intent_row)
        self._tell(row, now, ("charge.failed", charge_row), ("payment_intent.payment_failed", intent_row))
        return PageResult("declined", str(DECLINE_TEXTS.get(decline_code, message)))

    def settle(self, intent_row: SandboxPayment, now: datetime, *, succeed: bool) -> None:
        """A ``processing`` PaymentIntent (the delayed method) succeeds or fails; the Session's async event follows."""
        intent = intent_row.state
        if intent.get("status") != "processing":
            raise StripeError(400, f"This PaymentIntent's status is {intent.get('status')}, not processing.")
        intent_row.session.pop("settle", None)
        session_row = self._row(intent_row.session.get("session"), lock=True)
        charge_row = self._row(intent.get("latest_charge"), lock=True)
        charge = charge_row.state
        if succeed:
            charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"])
            charge["balance_transaction"] = wire.random_id("txn")
            intent.update(status="succeeded", amount_received=intent["amount"])
        else:
            charge.update(DELAYED_FAILURE, outcome={**charge["outcome"], **DELAYED_FAILURE_OUTCOME})
            intent.update(status="requires_payment_method", last_payment_error={"charge": charge["id"], **ATTEMPT_FAILED})
        self._save(charge_row)
        self._save(intent_row, due_at=None)
        word = "succeeded" if succeed else "failed"
        self._tell(
            session_row,
            now,
            (f"charge.{word}", charge_row),
            ("payment_intent." + ("succeeded" if succeed else "payment_failed"), intent_row),
        )
        if session_row is not None:
            if succeed:
                session_row.state["payment_status"] = "paid"
                self._save(session_row)
            self._tell(session_row, now, (f"checkout.session.async_payment_{word}", session_row))


def _read_card(form: dict[str, str], now: datetime) -> tuple[str, int, int] | PageResult:
    """The card number, expiry month and year from the page's form, or what is wrong with them."""
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
    return number, month, year


def authentication_failed() -> str:
    """What the page says after a failed 3-D Secure challenge (Stripe's wording)."""
    return _("We are unable to authenticate your payment method. Please choose a different payment method and try again.")
