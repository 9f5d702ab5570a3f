"""Mini PG, emulated: the recipe of docs/adding_a_pg.rst, step 2.

Registered from the test settings (``PGPAY_SANDBOX_EMULATORS``), configured by
``PGPAY_SANDBOX["MINIPG"] = {"API_KEYS": [...], "WEBHOOK_SECRET": ..., "WEBHOOK_URL": ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from django_pgpay.sandbox import clock, webhooks, wire
from django_pgpay.sandbox.base import Answer, ApiError, Problem, SandboxPG, dumps, framed, guard
from django_pgpay.sandbox.lifecycle import Ledger, Refusal, Stage
from django_pgpay.sandbox.models import SandboxPayment

#: Mini PG's error codes -> HTTP status (any other code: 400).
STATUSES = {"bad_key": 401, "not_found": 404, "in_progress": 409, "internal": 500}
STAGES = {"paid": Stage.PAID, "partially_refunded": Stage.PAID, "refunded": Stage.CANCELED}


class MiniSandbox(SandboxPG):
    """Mini PG's API (``v1/payments/<id>``, ``v1/payments/<id>/refunds``) and its payment window (``pay``)."""

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

    def urlpatterns(self) -> list:
        return [
            path("v1/payments/<str:key>", csrf_exempt(self.view_payment)),
            path("v1/payments/<str:key>/refunds", csrf_exempt(self.view_refund)),
            path("pay", framed(self.view_window)),
        ]

    def actions(self) -> dict:
        return {"pay": self.act_pay, "cancel": self.act_cancel, "payment": self.act_payment}

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

    # --- what the buyer and Mini PG's staff do ------------------------------------------------

    def act_pay(self, order_id: str, amount: int, currency: str = "KRW", origin: str = "") -> dict:
        """The buyer paid ``amount`` for ``order_id``: a paid payment (and its ``payment.paid`` webhook)."""
        from django.db import transaction

        key = "mp_" + wire.random_text(20)
        state = {"id": key, "order": order_id, "amount": int(amount), "currency": currency, "refunded": 0, "refunds": []}
        state["created"] = clock.now().isoformat()
        with transaction.atomic():
            self.save(SandboxPayment(pg=self.name, key=key, order_id=order_id, state=state), "paid", "payment.paid", origin)
        return state

    def act_cancel(self, payment_key: str, amount: int | None = None) -> dict:
        """Mini PG's staff refund ``amount`` (None: the balance) in its console."""
        from django.db import transaction

        with transaction.atomic():
            row = self.find(payment_key, lock=True)
            plan = self.plan_cancel(Ledger(row.state["amount"], row.state["refunded"], STAGES[row.status]), amount)
            self.refund(row, {"id": "re_" + wire.random_text(16), "amount": plan.amount, "key": ""}, plan.full)
        return row.state

    def act_payment(self, payment_key: str) -> dict:
        return self.find(payment_key).state

    def view_window(self, request):
        """The payment window: a Pay button; paying returns the buyer with ``?payment=&order=``."""
        guard()
        order, amount, back = (request.GET.get(name, "") for name in ("order", "amount", "return"))
        if request.method == "POST" and wire.parse_krw(amount) and wire.is_http_url(back):
            paid = self.act_pay(order, wire.parse_krw(amount), origin=f"{request.scheme}://{request.get_host()}")
            return HttpResponseRedirect(wire.with_query(back, {"payment": paid["id"], "order": order}))
        return HttpResponse(f'<form method="post"><p>Mini PG: {escape(order)} ₩{escape(amount)}</p><button>Pay</button></form>')
