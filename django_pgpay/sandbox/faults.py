"""Faults armed on purpose: the next matching call (or webhook) misbehaves.

::

    from django_pgpay.sandbox import faults
    faults.arm("toss", "confirm", "timeout_after", delay=3)   # approve, then answer too late
    faults.arm("toss", "webhook", "duplicate")                 # the next webhook arrives twice

A fault applies to ``times`` calls, optionally only those naming ``match`` (a
payment key or an order id). It lives in the database, so a fault armed by a
test process hits the server process that serves the call.

API faults (operations ``confirm``, ``cancel``, ``lookup``, ``token``, ``prepare``,
``checkout``, ``expire`` or ``*``; ``*`` covers all but ``token``, the
access-token request of PGs that have one; ``prepare`` is PortOne's amount
registration; Stripe: ``checkout`` creates a Checkout Session, ``expire``
expires one, ``cancel`` is a refund, ``confirm`` the payment on the hosted page):

``decline``
    confirm only: the card company refuses (Toss 403 ``REJECT_CARD_COMPANY``;
    Stripe's hosted page: ``card_declined``); the payment becomes ABORTED
    (Stripe: the attempt fails, the Checkout Session stays open). Params
    ``code``, ``message``.
``error_before`` / ``error_after``
    a 5xx (params ``status`` 500, ``code``, ``message``) before anything
    changed, or after the change was committed (the answer is lost, the
    payment happened; a retry with the same idempotency key gets the real answer).
``timeout_before`` / ``timeout_after``
    the answer comes ``delay`` seconds late (default 35, past a 30 s client
    timeout); before: nothing changed; after: the change was committed first.
``malformed_before`` / ``malformed_after``
    HTTP 200 with a body that is not JSON (param ``body``), before or after
    the change was committed.

Webhook faults (operation ``webhook``, ``match`` may also be an event type):

``drop``
    the delivery is recorded but never sent.
``duplicate``
    sent ``copies`` (default 1) extra times.
``delay``
    held back ``seconds`` (default 60) on the sandbox clock.
``reorder``
    the next ``count`` (default 2) deliveries are held until the last one
    is queued, then sent newest first.
``stale_signature`` / ``wrong_secret``
    PGs that sign webhooks (Stripe): the delivery's first attempt is signed
    ``seconds`` (default 600) in the past, or with a secret the shop does not
    know; retries are signed correctly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from .models import SandboxFault

API_OPERATIONS = frozenset({"confirm", "cancel", "lookup", "token", "prepare", "checkout", "expire", "*"})
#: Operations that ``"*"`` does not cover: only a fault armed for them by name hits them
#: (an access-token request is not one of the calls a "*" fault is meant for).
NAMED_ONLY_OPERATIONS = frozenset({"token"})
API_KINDS = frozenset(
    {
        "decline",
        "error_before",
        "error_after",
        "timeout_before",
        "timeout_after",
        "malformed_before",
        "malformed_after",
    }
)
WEBHOOK_KINDS = frozenset({"drop", "duplicate", "delay", "reorder", "stale_signature", "wrong_secret"})
#: Webhook kinds that spoil the signature of a delivery (PGs that sign webhooks).
SIGNATURE_KINDS = frozenset({"stale_signature", "wrong_secret"})
#: Header of a stored delivery that notes a signature fault (never sent).
SIGNATURE_FAULT_HEADER = "X-Sandbox-Signature-Fault"
#: Kinds that act before the PG changes anything.
BEFORE_KINDS = frozenset({"error_before", "timeout_before", "malformed_before"})
#: Kinds that act on the answer after the change was committed.
AFTER_KINDS = frozenset({"error_after", "timeout_after", "malformed_after"})


@dataclass(frozen=True)
class Fault:
    """A fault taken for one call (a snapshot: the row may be gone already)."""

    id: int
    pg: str
    operation: str
    kind: str
    match: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    #: Calls still to hit after this one.
    remaining: int = 0

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


def validate(operation: str, kind: str) -> None:
    """Raise ValueError for a kind that does not fit the operation."""
    if operation == "webhook":
        if kind not in WEBHOOK_KINDS:
            raise ValueError(f"webhook faults are {sorted(WEBHOOK_KINDS)}, not {kind!r}")
        return
    if operation not in API_OPERATIONS:
        raise ValueError(f"operation must be one of {sorted(API_OPERATIONS | {'webhook'})}, not {operation!r}")
    if kind not in API_KINDS:
        raise ValueError(f"API faults are {sorted(API_KINDS)}, not {kind!r}")
    if kind == "decline" and operation not in ("confirm", "*"):
        raise ValueError("'decline' applies to confirm only")


#: The numeric knobs of faults and their bounds: a fault the sandbox cannot carry out is refused when armed.
NUMERIC_PARAMS: dict[str, tuple[float, float]] = {
    "delay": (0, 600),
    "seconds": (0, 366 * 24 * 3600),
    "copies": (1, 20),
    "count": (1, 50),
    "status": (400, 599),
}


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with numeric knobs checked (finite, in range); ``ValueError`` otherwise."""
    from decimal import Decimal, InvalidOperation

    checked = dict(params)
    for name, (low, high) in NUMERIC_PARAMS.items():
        if name not in checked:
            continue
        value = checked[name]
        try:
            number = Decimal(str(value)) if not isinstance(value, bool) else None
        except (InvalidOperation, ValueError):
            number = None
        if number is None or not number.is_finite() or not low <= number <= high:
            raise ValueError(f"{name} must be a number from {low} to {high}")
        checked[name] = int(number) if name in ("copies", "count", "status") else float(number)
    for name in ("code", "message", "body"):
        if name in checked and not isinstance(checked[name], str):
            raise ValueError(f"{name} must be text")
    return checked


def arm(pg: str, operation: str, kind: str, *, times: int = 1, match: str = "", **params) -> SandboxFault:
    """Arm ``kind`` for the next ``times`` calls of ``operation`` at ``pg``."""
    validate(operation, kind)
    if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 10_000:
        raise ValueError("times must be an integer from 1 to 10000")
    return SandboxFault.objects.create(
        pg=pg, operation=operation, kind=kind, match=str(match or "")[:200], params=check_params(params), remaining=times
    )


def take(pg: str, operation: str, keys: Iterable[str] = ()) -> Fault | None:
    """Consume one use of the oldest fault armed for this call, if any."""
    names = [k for k in keys if k]
    operations = [operation] if operation == "webhook" or operation in NAMED_ONLY_OPERATIONS else [operation, "*"]
    rows = SandboxFault.objects.select_for_update().filter(pg=pg, operation__in=operations, remaining__gt=0)
    if operation not in ("confirm", "webhook"):
        rows = rows.exclude(kind="decline")
    with transaction.atomic():
        row = rows.filter(Q(match="") | Q(match__in=names)).order_by("id").first()
        if row is None:
            return None
        row.remaining -= 1
        fault = Fault(
            id=row.pk,
            pg=row.pg,
            operation=row.operation,
            kind=row.kind,
            match=row.match,
            params=dict(row.params or {}),
            remaining=row.remaining,
        )
        if row.remaining:
            row.save(update_fields=["remaining"])
        else:
            row.delete()
        return fault


def armed(pg: str | None = None) -> list[SandboxFault]:
    """Faults still waiting for a call."""
    rows = SandboxFault.objects.filter(remaining__gt=0)
    return list(rows.filter(pg=pg) if pg else rows)


def clear(pg: str | None = None) -> int:
    """Disarm every fault (of ``pg``); returns how many were removed."""
    rows = SandboxFault.objects.all()
    if pg:
        rows = rows.filter(pg=pg)
    return rows.delete()[0]
