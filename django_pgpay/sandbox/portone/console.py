"""The sandbox's PortOne console (``portone/console/``): what PortOne's staff and the buyer's bank do.

It lists the payments of both versions and the prepare table, and deposits
into a virtual account, cancels in the console (full or a partial amount),
revokes every access token and lets the next window of a prepared order
through with another amount (a developer fault).
"""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from ..base import ApiError, guard
from ..models import SandboxPayment, SandboxPrepared
from ..registry import emulator
from .common import _format, money

#: The console's buttons: ``op`` -> (PG, action, {argument: form field}).
OPERATIONS = {
    "deposit": ("portone", "deposit", {"imp_uid": "imp_uid"}),
    "cancel": ("portone", "cancel", {"imp_uid": "imp_uid", "amount": "amount"}),
    "revoke": ("portone", "revoke_tokens", {}),
    "allow": ("portone", "allow_other_amount", {"merchant_uid": "merchant_uid"}),
    "v2-deposit": ("portone-v2", "deposit", {"payment_id": "payment_id"}),
    "v2-cancel": ("portone-v2", "cancel", {"payment_id": "payment_id", "amount": "amount"}),
}


def _operate(request: HttpRequest) -> str:
    """Do the pressed button; returns what went wrong ("" when nothing did)."""
    op = request.POST.get("op", "")
    if op not in OPERATIONS:
        return ""
    pg, action, fields = OPERATIONS[op]
    kwargs = {name: request.POST.get(field, "").strip() for name, field in fields.items()}
    if "amount" in kwargs:
        kwargs["amount"] = kwargs["amount"] or None
    try:
        getattr(emulator(pg), "act_" + action)(**kwargs)
    except (ApiError, ValueError) as exc:
        return f"{op}: {getattr(exc, 'message', None) or getattr(exc, 'code', None) or exc}"
    return ""


def _v1_rows(v1) -> list[dict]:
    rows = []
    for payment in SandboxPayment.objects.filter(pg=v1.name).order_by("-id")[:50]:
        state, balance = payment.state, v1.balance(payment)
        rows.append(
            {
                "imp_uid": payment.key,
                "merchant_uid": payment.order_id,
                "status": state["status"],
                "pay_method": state["pay_method"],
                "amount": _format(money(state["amount"])),
                "balance": _format(balance),
                "sandbox": state.get("sandbox"),
                "vbank": bool(state.get("vbank_num")),
                "cancellable": state["status"] == "paid" and balance > 0,
            }
        )
    return rows


def _v2_rows(v2) -> list[dict]:
    return [
        {
            "payment_id": payment.key,
            "status": payment.state["status"],
            "amount": _format(Decimal(payment.state["amount"]["total"])),
            "balance": _format(Decimal(v2.balance(payment))),
            "channel": payment.state["channel"]["type"],
            "vbank": payment.state["status"] == "VIRTUAL_ACCOUNT_ISSUED",
            "cancellable": payment.state["status"] in ("PAID", "PARTIAL_CANCELLED"),
        }
        for payment in SandboxPayment.objects.filter(pg=v2.name).order_by("-id")[:50]
    ]


def view(request: HttpRequest) -> HttpResponse:
    """The console's page; a POST does one of its buttons (and comes back here)."""
    guard()
    v1, v2 = emulator("portone"), emulator("portone-v2")
    error = ""
    if request.method == "POST":
        error = _operate(request)
        if not error:
            return HttpResponseRedirect(reverse("pgpay_sandbox:portone-console"))
    prepared = [
        {"merchant_uid": row.key, "amount": _format(money(row.amount)), "currency": row.currency or "-", "allow": row.allow_other_amount}
        for row in SandboxPrepared.objects.filter(pg=v1.name).order_by("-id")[:30]
    ]
    context = {
        "title": v1.title,
        "payments": _v1_rows(v1),
        "v2_payments": _v2_rows(v2),
        "prepared": prepared,
        "token_requests": v1.token_requests(),
        "error": error,
        "dashboard_url": reverse("pgpay_sandbox:index"),
    }
    return render(request, "pgpay_sandbox/portone/console.html", context, status=400 if error else 200)
