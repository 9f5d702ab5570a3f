"""The sandbox's Python API: what tests (and the control endpoints) drive it with.

::

    from django_pgpay.sandbox import control, stripe, toss

    control.reset()                                        # empty sandbox, real time
    paid = toss.authenticate("order-0001", 15000)          # the buyer paid in the window
    control.arm_fault("toss", "confirm", "error_after")    # the next confirm's answer is lost
    control.advance_clock(minutes=11)                      # past Toss's confirm window
    control.deliver_webhooks()                             # send what is queued, now
    stripe.pay("cs_test_...", card="4000000000000002")     # a Stripe buyer's card is declined

Every function works across processes: the state is in the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from . import clock, faults, webhooks
from .models import (
    SandboxDeliveryAttempt,
    SandboxFault,
    SandboxIdempotency,
    SandboxPayment,
    SandboxPrepared,
    SandboxToken,
    SandboxWebhook,
)
from .registry import emulator, emulators


def reset() -> None:
    """Forget everything: payments, prepared amounts, idempotency keys, access tokens, faults, webhooks; back to real time."""
    with transaction.atomic():
        SandboxToken.objects.all().delete()
        SandboxPrepared.objects.all().delete()
        SandboxDeliveryAttempt.objects.all().delete()
        SandboxWebhook.objects.all().delete()
        SandboxFault.objects.all().delete()
        SandboxIdempotency.objects.all().delete()
        SandboxPayment.objects.all().delete()
    clock.reset()


def now() -> datetime:
    """The sandbox clock's time."""
    return clock.now()


def advance_clock(delta: timedelta | None = None, **kwargs) -> datetime:
    """Move the sandbox clock forward (``advance_clock(minutes=11)``)."""
    return clock.advance(delta, **kwargs)


def set_clock_offset(delta: timedelta) -> timedelta:
    """Set the clock's offset from real time (``timedelta(0)`` = real time)."""
    return clock.set_offset(delta)


def arm_fault(pg: str, operation: str, kind: str, *, times: int = 1, match: str = "", **params) -> SandboxFault:
    """Arm a fault (see :mod:`django_pgpay.sandbox.faults` for kinds and params)."""
    if kind == "reorder" and times == 1:
        times = int(params.pop("count", 2))
    return faults.arm(pg, operation, kind, times=times, match=match, **params)


def clear_faults(pg: str | None = None) -> int:
    """Disarm every fault."""
    return faults.clear(pg)


def tick() -> dict[str, int]:
    """Apply time-based changes and send due webhooks once (what the worker does)."""
    from .worker import tick as run

    return run()


def deliver_due_webhooks() -> list[webhooks.DeliveryResult]:
    """Send the webhooks whose time has come, in order (retries and delays respected)."""
    return webhooks.deliver_due()


def deliver_webhooks(ids=None, *, force: bool = True) -> list[webhooks.DeliveryResult]:
    """Send pending webhooks now, oldest first (``ids`` to pick some; held and delayed ones too)."""
    return webhooks.deliver(ids, force=force)


def release_held_webhooks() -> int:
    """Release every delivery a reorder fault still holds (newest first)."""
    return webhooks.release_held()


def pending_webhooks(pg: str | None = None) -> list[SandboxWebhook]:
    """Webhooks not delivered yet."""
    return webhooks.pending(pg)


def act(pg: str, action: str, **kwargs: Any) -> Any:
    """Run one of a PG's actions (``act("toss", "deposit", payment_key=...)``; older names are accepted)."""
    return emulator(pg).action(action)(**kwargs)


# --- views of the state (JSON-friendly) ---------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def describe_payment(payment: SandboxPayment) -> dict[str, Any]:
    try:
        summary = emulator(payment.pg).describe(payment)
    except KeyError:  # a PG removed from the sandbox
        summary = {}
    return {
        "pg": payment.pg,
        "key": payment.key,
        "order_id": payment.order_id,
        "status": payment.status,
        "amount": summary.get("amount"),
        "balance": summary.get("balance"),
        "method": summary.get("method"),
        "created_at": _time(payment.created_at),
        "due_at": _time(payment.due_at),
    }


def describe_webhook(webhook: SandboxWebhook, *, body: bool = True) -> dict[str, Any]:
    from .base import loads

    data: dict[str, Any] = {
        "id": webhook.pk,
        "pg": webhook.pg,
        "event_type": webhook.event_type,
        "payment_key": webhook.payment_key,
        "url": webhook.url,
        "status": webhook.status,
        "attempts": webhook.attempts,
        "next_attempt_at": _time(webhook.next_attempt_at),
        "held": webhook.status == SandboxWebhook.PENDING and webhook.next_attempt_at is None,
        "last_status_code": webhook.last_status_code,
        "last_error": webhook.last_error,
        "duplicate_of": webhook.duplicate_of_id,
        "created_at": _time(webhook.created_at),
        "delivered_at": _time(webhook.delivered_at),
    }
    if body:
        try:
            data["body"] = loads(webhook.body)
        except ValueError:
            data["body"] = webhook.body
    return data


def describe_fault(fault: SandboxFault) -> dict[str, Any]:
    return {
        "id": fault.pk,
        "pg": fault.pg,
        "operation": fault.operation,
        "kind": fault.kind,
        "match": fault.match,
        "params": fault.params,
        "remaining": fault.remaining,
    }


def state(limit: int = 50) -> dict[str, Any]:
    """A snapshot: clock, configured PGs, recent payments, webhooks and armed faults."""
    return {
        "now": _time(clock.now()),
        "offset_seconds": clock.offset().total_seconds(),
        "pgs": {pg.name: {"configured": pg.configured, "actions": sorted(pg.actions())} for pg in emulators()},
        # Stripe's events are in /v1/events, not among the payments.
        "payments": [describe_payment(p) for p in SandboxPayment.objects.exclude(status="event").order_by("-id")[:limit]],
        "webhooks": [describe_webhook(w) for w in SandboxWebhook.objects.order_by("-id")[:limit]],
        "faults": [describe_fault(f) for f in faults.armed()],
    }
