"""What tests, the control API and the dashboard ask of the Stripe sandbox: the buyer's and Stripe's own moves.

Each action has a Python function here (``pay``, ``pay_delayed``,
``settle``, ``refund_in_dashboard``, ``expire``, ``session_state``,
``payment_intent_state``) and a name in :meth:`Actions.actions` for the
control API and the dashboard.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction

from .. import clock
from ..models import SandboxPayment
from . import wire
from .intents import PageResult
from .wire import StripeError


class Actions:
    """The sandbox's actions on Stripe objects; mixed into the emulator."""

    #: Stripe's older action names (``base.ACTION_NAMES`` gives the uniform ones).
    action_aliases = {"refund": "cancel", "session": "state"}

    def actions(self) -> dict[str, Callable[..., Any]]:
        """The uniform names (``cancel``: a refund made in Stripe's Dashboard; ``state``: the Checkout Session) and Stripe's own."""
        return {
            "pay": self.act_pay,
            "pay-delayed": self.act_pay_delayed,
            "settle": self.act_settle,
            "fail": self.act_fail,
            "cancel": self.act_refund,
            "expire": self.act_expire,
            "state": self.act_session,
            "payment-intent": self.act_payment_intent,
        }

    def _open_session(self, session_id: str, now: datetime) -> SandboxPayment:
        row = self._session_row(session_id)
        self.refresh_session(row, now)
        if row.state.get("status") != "open":
            raise StripeError(400, f"The Checkout Session is {row.state.get('status')}, not open.")
        return row

    def act_pay(
        self,
        session_id: str = "",
        card: str = "4242424242424242",
        email: str = "",
        complete_3ds: bool = True,
        payment_key: str = "",
        **_ignored: Any,
    ) -> dict[str, Any]:
        """The buyer pays on the hosted page (no browser); 3-D Secure cards are authenticated unless ``complete_3ds=False``.

        Returns ``{"outcome", "message", "session", "success_url"}`` (the Session as the API returns it).
        """
        session_id = session_id or payment_key
        now = clock.now()
        with transaction.atomic():
            row = self._open_session(session_id, now)
            form = {
                "email": email or row.state.get("customer_email") or "buyer@example.com",
                "card_number": card,
                "card_expiry": f"12 / {(now.year + 3) % 100:02d}",
                "card_cvc": "123",
                "card_name": "Sandbox Buyer",
                "country": "KR",
            }
            result = self.attempt_card(row, form, now)
            if result.kind == "action":
                result = self.authenticate_3ds(row, complete=bool(complete_3ds), now=now)
        return self._outcome(session_id, result)

    def act_pay_delayed(
        self, session_id: str = "", email: str = "", outcome: str = "manual", payment_key: str = "", **_ignored: Any
    ) -> dict[str, Any]:
        """The buyer pays with the delayed method: ``outcome`` ``manual`` (settle later), ``succeed:SECONDS`` or ``fail:SECONDS``."""
        session_id = session_id or payment_key
        now = clock.now()
        with transaction.atomic():
            row = self._open_session(session_id, now)
            form = {"email": email or row.state.get("customer_email") or "buyer@example.com", "account_holder": "Sandbox Buyer"}
            result = self.attempt_delayed(row, {**form, "delayed_outcome": outcome}, now)
        return self._outcome(session_id, result)

    def _outcome(self, session_id: str, result: PageResult) -> dict[str, Any]:
        session = self.render(session_id)
        success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id) if result.kind in ("paid", "processing") else None
        return {"outcome": result.kind, "message": result.message, "session": session, "success_url": success}

    def _intent_row(self, key: str) -> SandboxPayment:
        """A locked PaymentIntent by its id, its Checkout Session's id or one of its Charges' ids."""
        if key.startswith("cs_"):
            session = self.render(key)
            key = session.get("payment_intent") or "" if session else ""
        elif key.startswith("ch_"):
            charge = self.render(key)
            key = charge.get("payment_intent") or "" if charge else ""
        row = self._row(key, lock=True) if key.startswith("pi_") else None
        if row is None:
            raise wire.no_such("payment_intent", key or "?", "payment_intent")
        return row

    def act_settle(self, payment_key: str, succeed: bool = True, **_ignored: Any) -> dict[str, Any]:
        """The delayed payment of ``payment_key`` (a ``pi_``, ``cs_`` or ``ch_`` id) succeeds (or fails)."""
        now = clock.now()
        with transaction.atomic():
            row = self._intent_row(payment_key)
            self.settle(row, now, succeed=bool(succeed) and succeed not in ("false", "0"))
        return self.render(row.key)

    def act_fail(self, payment_key: str, **_ignored: Any) -> dict[str, Any]:
        """The delayed payment of ``payment_key`` fails."""
        return self.act_settle(payment_key, succeed=False)

    def act_refund(self, payment_key: str, amount: Any = None, reason: str | None = None, **_ignored: Any) -> dict[str, Any]:
        """A refund made in the Stripe Dashboard: ``amount`` in the minor unit (None: the rest); no metadata."""
        minor = None if amount in (None, "") else wire.integer(str(amount), "amount", minimum=1)
        now = clock.now()
        with transaction.atomic():
            intent_row = self._intent_row(payment_key) if not payment_key.startswith("ch_") else None
            charge_row = self._charge_to_refund(intent_row.key if intent_row else None, payment_key if intent_row is None else None)
            return self.refund(charge_row, minor, now, metadata={}, reason=reason or "requested_by_customer")

    def act_expire(self, payment_key: str = "", session_id: str = "", **_ignored: Any) -> dict[str, Any]:
        """Stripe expires an open Checkout Session now (as when ``expires_at`` passes)."""
        session_id = session_id or payment_key
        now = clock.now()
        with transaction.atomic():
            row = self._open_session(session_id, now)
            self._expire(row, now)
        return self.render(session_id)

    def act_session(self, payment_key: str = "", session_id: str = "", **_ignored: Any) -> dict[str, Any]:
        """The Checkout Session as ``GET /v1/checkout/sessions/{id}`` returns it (unexpanded)."""
        found = self.render(session_id or payment_key)
        if found is None:
            raise wire.no_such("checkout.session", session_id or payment_key, "session")
        return found

    def act_payment_intent(self, payment_key: str, **_ignored: Any) -> dict[str, Any]:
        """The PaymentIntent of ``payment_key`` (``pi_``, ``cs_`` or ``ch_`` id)."""
        with transaction.atomic():
            return copy.deepcopy(self._intent_row(payment_key).state)

    def apply_due_to(self, key: str, now: datetime) -> bool:
        row = self._row(key, lock=True)
        if row is None or row.due_at is None or row.due_at > now:
            return False
        if key.startswith("cs_"):
            return bool(self.refresh_session(row, now))
        if key.startswith("pi_") and row.session.get("settle"):
            self.settle(row, now, succeed=bool(row.session["settle"].get("succeed")))
            return True
        row.due_at = None
        row.save(update_fields=["due_at"])
        return False


# --- the Python API (what tests call) -------------------------------------------------------


def _stripe():
    from ..registry import emulator

    return emulator("stripe")


def pay(session_id: str, card: str = "4242424242424242", **kwargs: Any) -> dict[str, Any]:
    """The buyer pays the Checkout Session with ``card`` (no browser): ``{"outcome", "message", "session", "success_url"}``."""
    return _stripe().act_pay(session_id, card=card, **kwargs)


def pay_delayed(session_id: str, outcome: str = "manual", **kwargs: Any) -> dict[str, Any]:
    """The buyer pays with the delayed method; ``outcome`` ``manual``, ``succeed:SECONDS`` or ``fail:SECONDS``."""
    return _stripe().act_pay_delayed(session_id, outcome=outcome, **kwargs)


def settle(payment_key: str, succeed: bool = True) -> dict[str, Any]:
    """A delayed payment succeeds (or fails): ``checkout.session.async_payment_succeeded`` / ``_failed``."""
    return _stripe().act_settle(payment_key, succeed=succeed)


def refund_in_dashboard(payment_key: str, amount: int | None = None) -> dict[str, Any]:
    """A refund made in Stripe's Dashboard (``amount`` in the minor unit; None: the rest): ``charge.refunded``."""
    return _stripe().act_refund(payment_key, amount)


def expire(session_id: str) -> dict[str, Any]:
    """Stripe expires an open Checkout Session now: ``checkout.session.expired``."""
    return _stripe().act_expire(session_id)


def session_state(session_id: str) -> dict[str, Any]:
    """The Checkout Session as the API returns it."""
    return _stripe().act_session(session_id)


def payment_intent_state(payment_key: str) -> dict[str, Any]:
    """The PaymentIntent of a ``pi_``, ``cs_`` or ``ch_`` id."""
    return _stripe().act_payment_intent(payment_key)
