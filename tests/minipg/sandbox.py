"""Mini PG, emulated: the recipe of docs/adding_a_pg.rst, step 2.

Registered from the test settings (``PGPAY_SANDBOX_EMULATORS``), configured by
``PGPAY_SANDBOX["MINIPG"] = {"API_KEYS": [...], "WEBHOOK_SECRET": ..., "WEBHOOK_URL": ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape

from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from django_pgpay.sandbox import clock, webhooks, wire
from django_pgpay.sandbox.base import Answer, ApiError, Problem, SandboxPG, dumps, framed
from django_pgpay.sandbox.lifecycle import Ledger, Refusal, Stage
from django_pgpay.sandbox.models import SandboxPayment
from django_pgpay.sandbox.window import PaymentWindow

#: Mini PG's error codes -> HTTP status (any other code: 400).
STATUSES = {"bad_key": 401, "not_found": 404, "in_progress": 409, "internal": 500}
STAGES = {"open": Stage.PENDING, "paid": Stage.PAID, "partially_refunded": Stage.PAID, "refunded": Stage.CANCELED, "failed": Stage.CLOSED}


class MiniSandbox(PaymentWindow, SandboxPG):
    """Mini PG's API (``v1/payments[/<id>[/refunds]]``) and its payment window (``pay/<id>``)."""

    name = "minipg"
    settings_section = "MINIPG"
    title = "Mini PG"
    retry_schedule = (1.0, 5.0, 30.0)
    idempotency_header = "Idempotency-Key"
    key_settings = ("API_KEYS",)
    required_key_settings = ("API_KEYS",)
    problem_codes = {
        Problem.MALFORMED_BODY: "invalid_request",
        Problem.IDEMPOTENCY_KEY_INVALID: "invalid_request",
        Problem.IDEMPOTENCY_IN_FLIGHT: "in_progress",
        Problem.INTERNAL: "internal",
        Problem.INTERNAL_AFTER_COMMIT: "internal",
    }
    refusals = {
        Refusal.ALREADY_CANCELED: "already_refunded",
        Refusal.NOT_CANCELABLE: "not_refundable",
        Refusal.INVALID_AMOUNT: "invalid_amount",
        Refusal.OVER_BALANCE: "over_refund",
    }

    window_template = "pgpay_sandbox/window.html"

    def urlpatterns(self) -> list:
        return [
            path("v1/payments", csrf_exempt(self.view_create)),
            path("v1/payments/<str:key>", csrf_exempt(self.view_payment)),
            path("v1/payments/<str:key>/refunds", csrf_exempt(self.view_refund)),
            path("pay/<str:key>", framed(self.view_pay)),
        ]

    def actions(self) -> dict:
        return {"pay": self.act_pay, "cancel": self.act_cancel, "state": self.act_state}

    def authenticate(self, ctx) -> str:
        key = ctx.request.headers.get("X-Mini-Key", "")
        if not any(wire.same(key, known) for known in self.config().get("API_KEYS") or []):
            raise ApiError("bad_key")
        return key

    def error_answer(self, ctx, error: ApiError) -> Answer:
        status = error.status or STATUSES.get(error.code, 400)
        return Answer.json(status, {"error": {"code": error.code, "message": error.message or error.code}})

    def describe(self, payment) -> dict:
        state = payment.state
        return {"amount": state["amount"], "balance": state["amount"] - state["refunded"], "method": "card"}

    # --- the API ------------------------------------------------------------------------

    def view_create(self, request):
        return self.serve(request, "checkout", self.api_create)

    def api_create(self, ctx, *, fault) -> Answer:
        order, amount, back = (wire.field(ctx.data, name) for name in ("order", "amount", "return_url"))
        if not isinstance(order, str) or not order or not wire.parse_krw(amount) or not wire.is_http_url(back):
            raise ApiError("invalid_request", "order, amount and return_url are required")
        row = self.create(order, wire.parse_krw(amount), back)
        return Answer.json(200, {**row.state, "window_url": f"{ctx.origin}/sandbox/{self.name}/pay/{row.key}"})

    def view_payment(self, request, key):
        return self.serve(request, "lookup", lambda ctx, fault: Answer.json(200, self.find(key).state), match=lambda ctx: (key,))

    def view_refund(self, request, key):
        return self.serve(request, "cancel", self.api_refund, match=lambda ctx: (key,), key=key)

    def api_refund(self, ctx, *, fault, key) -> Answer:
        row = self.find(key, lock=True)
        payment = row.state
        amount = wire.parse_krw(wire.field(ctx.data, "amount"))
        if amount is None:
            raise ApiError("invalid_amount")
        plan = self.plan_cancel(Ledger(payment["amount"], payment["refunded"], STAGES[row.status]), amount)
        refund = {"id": "re_" + wire.random_text(16), "amount": plan.amount, "key": ctx.request.headers.get("Idempotency-Key", "")}
        self.refund(row, refund, plan.full, ctx.origin)
        return Answer.json(200, {"refund": refund, "payment": payment})

    # --- state and webhooks ---------------------------------------------------------------

    def find(self, key: str, *, lock: bool = False) -> SandboxPayment:
        rows = SandboxPayment.objects.filter(pg=self.name, key=key)
        row = (rows.select_for_update() if lock else rows).first()
        if row is None:
            raise ApiError("not_found", f"no payment {key}")
        return row

    def refund(self, row: SandboxPayment, refund: dict, full: bool, origin: str = "") -> None:
        row.state["refunds"].append(refund)
        row.state["refunded"] += refund["amount"]
        self.save(row, "refunded" if full else "partially_refunded", "payment.refunded", origin)

    def save(self, row: SandboxPayment, status: str, event: str, origin: str = "") -> None:
        row.status = row.state["status"] = status
        row.save()
        url = self.webhook_url(origin)
        if url:
            body = dumps({"id": "evt_" + wire.random_text(16), "type": event, "payment": row.state})
            secret = str(self.config().get("WEBHOOK_SECRET") or "").encode()
            signature = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
            webhooks.enqueue(self.name, event, body, url=url, payment_key=row.key, headers={"X-Mini-Signature": signature})

    def create(self, order_id: str, amount: int, return_url: str = "") -> SandboxPayment:
        key = "mp_" + wire.random_text(20)
        state = {"id": key, "order": order_id, "amount": amount, "currency": "KRW", "refunded": 0, "refunds": [], "status": "open"}
        state["created"] = clock.now().isoformat()
        return SandboxPayment.objects.create(
            pg=self.name, key=key, order_id=order_id, status="open", state=state, session={"return": return_url}
        )

    # --- the window (django_pgpay.sandbox.window) and what the buyer and Mini PG's staff do ----

    def window_is_open(self, payment) -> bool:
        return payment.status == "open"

    def window_context(self, payment) -> dict:
        return {"offers_payment": True, "amount_display": f"{payment.state['amount']:,}"}

    def window_act(self, request, payment, choice, now):
        if choice.action not in ("pay", "decline", "close"):
            return None
        paid = choice.action == "pay"
        self.save(
            payment, "paid" if paid else "failed", "payment.paid" if paid else "payment.failed", f"{request.scheme}://{request.get_host()}"
        )
        return HttpResponseRedirect(wire.with_query(payment.session["return"], {"payment": payment.key, "order": payment.order_id}))

    def window_error(self, request, code, message, *, status=400):
        return HttpResponse(f"Mini PG: {escape(code)} {escape(message)}", status=status)

    def act_pay(self, order_id: str, amount: int, origin: str = "") -> dict:
        """The buyer paid ``amount`` for ``order_id`` in the window: a paid payment (and its ``payment.paid`` webhook)."""
        with transaction.atomic():
            row = self.create(order_id, int(amount))
            self.save(row, "paid", "payment.paid", origin)
        return row.state

    def act_cancel(self, payment_key: str, amount: int | None = None) -> dict:
        """Mini PG's staff refund ``amount`` (None: the balance) in its console."""
        with transaction.atomic():
            row = self.find(payment_key, lock=True)
            plan = self.plan_cancel(Ledger(row.state["amount"], row.state["refunded"], STAGES[row.status]), amount)
            self.refund(row, {"id": "re_" + wire.random_text(16), "amount": plan.amount, "key": ""}, plan.full)
        return row.state

    def act_state(self, payment_key: str) -> dict:
        return self.find(payment_key).state
