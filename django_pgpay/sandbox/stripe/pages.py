"""Stripe's hosted Checkout page, its 3-D Secure step, the receipt page and the dashboard's Stripe panel.

The page at ``session.url`` shows the order and takes a test card (or the
delayed method); what the buyer does goes through
:class:`~.intents.Intents`, which records what Stripe would. The page speaks
the Session's ``locale`` (or the browser's for ``auto``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation

from .. import clock
from ..base import guard
from ..models import SandboxPayment
from . import wire
from .intents import authentication_failed
from .sessions import DELAYED_METHOD

#: What the page's form posts.
FORM_FIELDS = ("email", "card_number", "card_expiry", "card_cvc", "card_name", "country", "delayed_outcome", "account_holder")


class Pages:
    """The hosted page, the 3-D Secure step, the receipt and the dashboard panel; mixed into the emulator."""

    def page_language(self, request: HttpRequest, session: dict[str, Any]) -> str:
        """The page's language: the Session's ``locale``, or the browser's for ``auto`` (English when not translated)."""
        available = {code for code, _name in getattr(django_settings, "LANGUAGES", [])}
        locale = (session.get("locale") or "auto").split("-")[0]
        if locale != "auto":
            return locale if locale in available else "en"
        return translation.get_language_from_request(request) or "en"

    def _page_session(self, session_id: str, now) -> SandboxPayment | None:
        """The (locked, refreshed) Session of a page's URL; None when there is none. Runs in the caller's transaction."""
        row = self._row(session_id, lock=True) if session_id.startswith("cs_") else None
        if row is not None:
            self.refresh_session(row, now)
        return row

    def view_pay(self, request: HttpRequest, session_id: str) -> HttpResponse:
        """The hosted Checkout page at ``session.url``: the order, a card form, the delayed method, the way back."""
        guard()
        now = clock.now()
        with transaction.atomic():
            row = self._page_session(session_id, now)
            if row is None:
                return self._page_missing(request)
            if request.method != "POST" or row.state.get("status") != "open":
                error = ""
                if request.method != "POST" and request.GET.get("error") == "authentication":
                    with translation.override(self.page_language(request, row.state)):
                        error = str(authentication_failed())
                return self._page(request, row, status=200 if request.method != "POST" else 409, error=error)
            method = request.POST.get("method", "card")
            form = {name: request.POST.get(name, "") for name in FORM_FIELDS}
            with translation.override(self.page_language(request, row.state)):
                result = self.attempt_delayed(row, form, now) if method == DELAYED_METHOD else self.attempt_card(row, form, now)
        if result.kind in ("paid", "processing"):
            return self._to_success(request, row)
        if result.kind == "action":
            return HttpResponseRedirect(reverse("pgpay_sandbox:stripe-authenticate", args=[row.key]), status=303)
        status = 402 if result.kind == "declined" else 400
        return self._page(request, row, status=status, error=result.message, error_field=result.field, form=form, method=method)

    def view_authenticate(self, request: HttpRequest, session_id: str) -> HttpResponse:
        """The stand-in for the card issuer's 3-D Secure challenge ("Complete" / "Fail")."""
        guard()
        now = clock.now()
        with transaction.atomic():
            row = self._page_session(session_id, now)
            if row is None:
                return self._page_missing(request)
            intent = self.render(row.state["payment_intent"]) if row.state.get("payment_intent") else None
            waiting = row.state.get("status") == "open" and intent is not None and intent.get("status") == "requires_action"
            if not waiting:
                return HttpResponseRedirect(reverse("pgpay_sandbox:stripe-pay", args=[row.key]), status=303)
            with translation.override(self.page_language(request, row.state)):
                if request.method != "POST":
                    return render(request, "pgpay_sandbox/stripe/authenticate.html", self._page_context(row, intent=intent))
                result = self.authenticate_3ds(row, complete=request.POST.get("action") == "complete", now=now)
        if result.kind == "paid":
            return self._to_success(request, row)
        # Back to the page (a fresh GET), which says why.
        return HttpResponseRedirect(reverse("pgpay_sandbox:stripe-pay", args=[row.key]) + "?error=authentication", status=303)

    def _to_success(self, request: HttpRequest, row: SandboxPayment) -> HttpResponse:
        url = row.state["success_url"].replace("{CHECKOUT_SESSION_ID}", row.key)
        return HttpResponseRedirect(url, status=303)

    def _page_context(self, row: SandboxPayment, **extra: Any) -> dict[str, Any]:
        session = row.state
        currency = session["currency"]
        items = [
            {"name": item["description"], "quantity": item["quantity"], "unit": wire.amount_text(item["price"]["unit_amount"], currency)}
            | {"total": wire.amount_text(item["amount_total"], currency)}
            for item in row.session.get("line_items") or []
        ]
        return {
            "session": session,
            "row": row,
            "business_name": self.business_name(),
            "items": items,
            "total": wire.amount_text(session["amount_total"], currency),
            "currency": currency.upper(),
            "card": "card" in (session.get("payment_method_types") or []),
            "delayed": DELAYED_METHOD in (session.get("payment_method_types") or []),
            "expires": wire.from_ts(int(session["expires_at"])),
            "form": {},
            "error": "",
            "error_field": "",
            "method": "card",
            **extra,
        }

    def _page(self, request: HttpRequest, row: SandboxPayment, *, status: int = 200, **extra: Any) -> HttpResponse:
        template = "pgpay_sandbox/stripe/pay.html" if row.state.get("status") == "open" else "pgpay_sandbox/stripe/closed.html"
        context = self._page_context(row, **extra)
        form = {"card_number": "", "card_expiry": "", "card_name": "", "email": "", **(context.get("form") or {})}
        context["form"] = form
        context["email_value"] = row.state.get("customer_email") or form["email"]
        if row.state.get("status") == "complete" and row.state.get("success_url"):
            context["success_url"] = row.state["success_url"].replace("{CHECKOUT_SESSION_ID}", row.key)
        with translation.override(self.page_language(request, row.state)):
            return render(request, template, context, status=status)

    def _page_missing(self, request: HttpRequest) -> HttpResponse:
        return render(request, "pgpay_sandbox/stripe/closed.html", {"session": None}, status=404)

    def view_receipt(self, request: HttpRequest, charge_id: str) -> HttpResponse:
        """What a Charge's ``receipt_url`` shows."""
        guard()
        charge = self.render(charge_id) if charge_id.startswith("ch_") else None
        if charge is None:
            return self._page_missing(request)
        refunds = [self.render(r) for r in (self._row(charge_id).session.get("refunds") or [])]
        context = {
            "charge": charge,
            "business_name": self.business_name(),
            "amount": wire.amount_text(charge["amount"], charge["currency"]),
            "refunded": wire.amount_text(charge["amount_refunded"], charge["currency"]),
            "refunds": [
                {"id": r["id"], "amount": wire.amount_text(r["amount"], r["currency"]), "created": wire.from_ts(r["created"])}
                for r in refunds
                if r
            ],
            "paid_at": wire.from_ts(charge["created"]),
        }
        return render(request, "pgpay_sandbox/stripe/receipt.html", context)

    def dashboard_panel(self, request: HttpRequest) -> dict[str, Any] | None:
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith="cs_").order_by("-id")[:30]
        sessions = []
        for row in rows:
            session = row.state
            intent = self.render(session["payment_intent"]) if session.get("payment_intent") else None
            charge = self.render(intent["latest_charge"]) if intent and intent.get("latest_charge") else None
            currency, left = session["currency"], charge["amount"] - charge["amount_refunded"] if charge else 0
            entry = {"id": row.key, "order_id": row.order_id, "status": session["status"], "payment_status": session["payment_status"]}
            entry.update(total=wire.amount_text(session["amount_total"], currency), intent=intent, charge=charge, unit=currency.upper())
            entry.update(refunded=wire.amount_text(charge["amount_refunded"], currency) if charge else "", left=left)
            entry["refundable"] = charge is not None and charge["status"] == "succeeded" and left > 0
            sessions.append(entry)
        origin = f"{request.scheme}://{request.get_host()}"
        secrets_ = self.signing_secrets()
        return {
            "template": "pgpay_sandbox/stripe/panel.html",
            "sessions": sessions,
            "api_base": origin + reverse("pgpay_sandbox:index") + self.name,
            "webhook_secret": secrets_[0][:10] + "…" if secrets_ else "",
        }

    # --- actions (tests, the control API, the dashboard) --------------------------------------------
