"""The payment window every emulated Korean PG opens, once, with per-PG hooks.

The PG's SDK stand-in posts the shop's parameters to the PG's checkout view,
which creates the payment and redirects to the window, ``<pg>/pay/<key>``.
:class:`PaymentWindow` serves that window for every PG::

    GET   the payment (window_payment) -> refreshed when still open -> the page
    POST  lock the payment -> window token (window_token_ok, else 403)
          -> refresh (window_refresh) -> still open? (window_is_open, else 409)
          -> the buyer's Choice (pay, virtual account, decline, close; deposit
             timing; a developer fault for the shop's next call) -> window_act
             (None: not a choice of this PG, 400)

A PG mixes it into its :class:`~.base.SandboxPG` subclass and fills the hooks
it differs in: its template (which extends ``pgpay_sandbox/window.html``),
the context of its page, what a choice does, how a missing payment is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import clock, faults
from .base import guard, loads

#: The buyer's choices every window offers (a PG may add its own).
ACTIONS = frozenset({"pay", "virtual_account", "decline", "close"})
#: Older names of the choices (PortOne's windows posted ``vbank``).
ACTION_ALIASES = {"vbank": "virtual_account"}
#: The "the deposit arrives" choices of a virtual account: (seconds or "manual", label key).
DEPOSIT_CHOICES = [("manual", "manual"), ("10", "10"), ("60", "60"), ("600", "600")]


@dataclass(frozen=True)
class Choice:
    """What the buyer chose in the window."""

    action: str
    #: Seconds after the account is issued when the transfer arrives (None: by hand).
    deposit_after: float | None
    #: A fault armed for the shop's next call about this payment ("" for none).
    fault: str

    @property
    def gives_up(self) -> bool:
        """Declined or closed: the window ends without a payment."""
        return self.action in ("decline", "close")

    @classmethod
    def read(cls, request: HttpRequest, fault_field: str) -> Choice:
        action = request.POST.get("action", "")
        return cls(
            action=ACTION_ALIASES.get(action, action),
            deposit_after=deposit_after(request),
            fault=request.POST.get(fault_field, ""),
        )


def deposit_after(request: HttpRequest) -> float | None:
    """The window's "the deposit arrives after" choice, in seconds (None: when pressed on the dashboard)."""
    value = request.POST.get("deposit_after", "")
    if value in ("", "manual"):
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def payload(request: HttpRequest) -> dict[str, Any] | None:
    """The JSON object the SDK stand-in posts to the checkout view (None when it is not one)."""
    try:
        data = loads(request.POST.get("payload", ""))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def fault_params(kind: str) -> dict[str, Any]:
    """From a browser an answer only needs to be later than a client's timeout."""
    return {"delay": 35} if kind.startswith("timeout") else {}


class PaymentWindow:
    """The window flow; mixed into a :class:`~.base.SandboxPG` subclass (see the module docstring)."""

    #: The PG's page (extends ``pgpay_sandbox/window.html``).
    window_template = ""
    #: The PG's page for a refused window request.
    window_error_template = ""
    #: (code, message) of an unknown payment.
    window_not_found = ("NOT_FOUND", "Unknown payment.")
    #: Which of the shop's calls the developer option arms a fault for, the form field and its choices.
    window_fault_operation = "confirm"
    window_fault_field = "confirm_fault"
    window_fault_choices: list[tuple[str, str]] = []

    # --- hooks ---------------------------------------------------------------------

    def window_payment(self, request: HttpRequest, key: str, *, lock: bool):
        """The payment ``key`` of this PG (locked for update when ``lock``), or None."""
        from .models import SandboxPayment

        rows = SandboxPayment.objects.filter(pg=self.name, key=key)
        return (rows.select_for_update() if lock else rows).first()

    def window_token_ok(self, request: HttpRequest, payment) -> bool:
        """Whether a POST carries the window's own token (a PG without one: always)."""
        return True

    def window_refresh(self, payment, now: datetime, origin: str) -> None:
        """Apply what time did to the payment (an expired window) before it is shown or acted on."""

    def window_is_open(self, payment) -> bool:
        """Whether the buyer may still choose."""
        raise NotImplementedError

    def window_context(self, payment) -> dict[str, Any]:
        """The PG's entries of its page's context."""
        return {}

    def window_act(self, request: HttpRequest, payment, choice: Choice, now: datetime) -> HttpResponse | None:
        """Carry the buyer's choice out (inside the payment's lock); None when it is no choice of this PG."""
        raise NotImplementedError

    def window_error(self, request: HttpRequest, code: str, message: str, *, status: int = 400) -> HttpResponse:
        return render(request, self.window_error_template, {"code": code, "message": message, "title": self.title}, status=status)

    # --- the flow --------------------------------------------------------------------

    def window(self, request: HttpRequest, payment, *, status: int = 200) -> HttpResponse:
        """The window's page for ``payment``."""
        context = {
            "title": self.title,
            "payment": payment,
            "state": payment.state,
            "session": payment.session,
            "open": self.window_is_open(payment),
            "fault_field": self.window_fault_field,
            "fault_id": self.window_fault_field.replace("_", "-"),
            "fault_choices": self.window_fault_choices,
            "deposit_choices": DEPOSIT_CHOICES,
            **self.window_context(payment),
        }
        return render(request, self.window_template, context, status=status)

    def arm_window_fault(self, payment, choice: Choice) -> None:
        """Arm the developer option's fault for the shop's next call about ``payment``."""
        if choice.fault and choice.fault in dict(self.window_fault_choices):
            faults.arm(self.name, self.window_fault_operation, choice.fault, match=payment.key, **fault_params(choice.fault))

    def view_pay(self, request: HttpRequest, key: str) -> HttpResponse:
        """The payment window: GET shows it, POST carries out the buyer's choice."""
        guard()
        now, origin = clock.now(), f"{request.scheme}://{request.get_host()}"
        if request.method != "POST":
            payment = self.window_payment(request, key, lock=False)
            if payment is None:
                return self.window_error(request, *self.window_not_found, status=404)
            if self.window_is_open(payment):
                with transaction.atomic():
                    payment = self.window_payment(request, key, lock=True)
                    self.window_refresh(payment, now, origin)
            return self.window(request, payment)
        with transaction.atomic():
            payment = self.window_payment(request, key, lock=True)
            if payment is None:
                return self.window_error(request, *self.window_not_found, status=404)
            if not self.window_token_ok(request, payment):
                return self.window_error(request, "INVALID_REQUEST", "The window token is missing or wrong.", status=403)
            self.window_refresh(payment, now, origin)
            if not self.window_is_open(payment):
                return self.window(request, payment, status=409)
            answer = self.window_act(request, payment, Choice.read(request, self.window_fault_field), now)
            if answer is None:
                return self.window(request, payment, status=400)
        return answer
