"""The webhook outbox: what an emulated PG sends to the shop, and its delivery.

An emulator calls :func:`enqueue` inside the transaction that changes a
payment, so a webhook exists exactly when its change committed. Delivery is
separate (:func:`deliver_due`, run by the worker thread, the
``pgpay_sandbox deliver`` command or a test): it claims a row with a
conditional UPDATE, so several processes never send the same attempt twice,
posts the exact stored body, and schedules a retry on anything but the PG's
success answer (Toss: HTTP 200; Stripe: any 2xx; Bootpay: HTTP 200 with
``{"success": true}``; see :meth:`~django_pgpay.sandbox.base.SandboxPG.webhook_acknowledged`),
with the headers the PG makes for that attempt (Stripe and PortOne V2 sign each
attempt at the time it is sent).

Webhook faults (:mod:`django_pgpay.sandbox.faults`) act here: a dropped
delivery is kept with status ``dropped``; a duplicate is a second row with the
same body; a delayed one waits on the sandbox clock; a reorder batch is held
and released newest first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import clock, conf, faults
from .models import SandboxDeliveryAttempt, SandboxWebhook
from .registry import emulator

logger = logging.getLogger("django_pgpay.sandbox.webhooks")

#: Connect timeout of a delivery (the read timeout is WEBHOOKS["TIMEOUT"]).
CONNECT_TIMEOUT = 3.05


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery attempt."""

    webhook_id: int
    event_type: str
    status_code: int | None
    error: str
    #: The webhook's status after the attempt (delivered, pending, failed).
    status: str

    @property
    def delivered(self) -> bool:
        return self.status == SandboxWebhook.DELIVERED


def enqueue(
    pg: str,
    event_type: str,
    body: str,
    *,
    url: str,
    payment_key: str = "",
    headers: dict[str, str] | None = None,
    now: datetime | None = None,
) -> list[SandboxWebhook]:
    """Queue one webhook (and whatever an armed webhook fault makes of it)."""
    now = now or clock.now()
    sent_headers = {"Content-Type": "application/json"}
    sent_headers.update(headers or {})
    fault = faults.take(pg, "webhook", (payment_key, event_type))
    webhook = SandboxWebhook(
        pg=pg,
        event_type=event_type,
        payment_key=payment_key,
        url=url,
        headers=sent_headers,
        body=body,
        next_attempt_at=now,
        created_at=now,
    )
    rows = [webhook]
    if fault is None:
        webhook.save()
        return rows
    logger.info("sandbox %s webhook %s: fault %s", pg, event_type, fault.kind)
    if fault.kind == "drop":
        webhook.status = SandboxWebhook.DROPPED
        webhook.next_attempt_at = None
        webhook.save()
    elif fault.kind == "delay":
        webhook.next_attempt_at = now + timedelta(seconds=float(fault.param("seconds", 60)))
        webhook.save()
    elif fault.kind == "duplicate":
        webhook.save()
        for _ in range(int(fault.param("copies", 1))):
            copy = SandboxWebhook(
                pg=pg,
                event_type=event_type,
                payment_key=payment_key,
                url=url,
                headers=sent_headers,
                body=body,
                next_attempt_at=now,
                created_at=now,
                duplicate_of=webhook,
            )
            copy.save()
            rows.append(copy)
    elif fault.kind == "reorder":
        webhook.hold_group = fault.id
        webhook.next_attempt_at = None
        webhook.save()
        if fault.remaining == 0:
            release_held(group=fault.id, now=now)
    elif fault.kind in faults.SIGNATURE_KINDS:
        # A note for the PG's delivery_headers(); never sent as such.
        webhook.headers = {**sent_headers, faults.SIGNATURE_FAULT_HEADER: f"{fault.kind}:{float(fault.param('seconds', 600))}"}
        webhook.save()
    else:  # pragma: no cover - validate() admits no other kind
        webhook.save()
    return rows


def release_held(group: int | None = None, *, now: datetime | None = None) -> int:
    """Release held deliveries (of one reorder batch, or all), newest first."""
    now = now or clock.now()
    held = SandboxWebhook.objects.filter(status=SandboxWebhook.PENDING, next_attempt_at__isnull=True)
    if group is not None:
        held = held.filter(hold_group=group)
    count = 0
    for index, webhook in enumerate(held.order_by("-id")):
        SandboxWebhook.objects.filter(pk=webhook.pk).update(next_attempt_at=now + timedelta(microseconds=index))
        count += 1
    return count


def pending(pg: str | None = None) -> list[SandboxWebhook]:
    """Deliveries not delivered yet (held ones included), oldest first."""
    rows = SandboxWebhook.objects.filter(status=SandboxWebhook.PENDING)
    return list(rows.filter(pg=pg) if pg else rows)


def due_ids(now: datetime | None = None, *, limit: int = 100) -> list[int]:
    """Ids of deliveries whose next attempt is due, in sending order."""
    now = now or clock.now()
    rows = SandboxWebhook.objects.filter(status=SandboxWebhook.PENDING, next_attempt_at__lte=now)
    return list(rows.order_by("next_attempt_at", "id").values_list("id", flat=True)[:limit])


def deliver_due(*, limit: int = 100) -> list[DeliveryResult]:
    """Send every delivery that is due now; returns what happened to each."""
    results = []
    for webhook_id in due_ids(limit=limit):
        result = deliver_one(webhook_id)
        if result is not None:
            results.append(result)
    return results


def deliver(ids=None, *, force: bool = True) -> list[DeliveryResult]:
    """Send the given pending deliveries now (default: all pending, held ones included), in id order."""
    rows = SandboxWebhook.objects.filter(status=SandboxWebhook.PENDING)
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    results = []
    for webhook_id in rows.order_by("id").values_list("id", flat=True):
        result = deliver_one(webhook_id, force=force)
        if result is not None:
            results.append(result)
    return results


def _claim(webhook_id: int, *, force: bool) -> bool:
    real_now = timezone.now()
    lease = timedelta(seconds=float(conf.webhook_option("LEASE")))
    rows = SandboxWebhook.objects.filter(pk=webhook_id, status=SandboxWebhook.PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=real_now)
    )
    if not force:
        rows = rows.filter(next_attempt_at__lte=clock.now())
    return bool(rows.update(claimed_until=real_now + lease))


def deliver_one(webhook_id: int, *, force: bool = False) -> DeliveryResult | None:
    """Make one attempt at one delivery; None when another process owns it or it is not due."""
    if not _claim(webhook_id, force=force):
        return None
    webhook = SandboxWebhook.objects.get(pk=webhook_id)
    try:
        pg = emulator(webhook.pg)
        schedule = pg.webhook_schedule()
        acknowledged = pg.webhook_acknowledged
    except KeyError:  # a PG removed from the sandbox
        schedule = []
        acknowledged = _ok
    status_code, error, took, answer = _post(webhook)
    succeeded = status_code is not None and acknowledged(status_code, answer)
    if not succeeded and not error:
        error = f"HTTP {status_code}" + (": not the PG's success answer" if 200 <= status_code < 300 else "")
    at = clock.now()
    with transaction.atomic():
        SandboxDeliveryAttempt.objects.create(
            webhook=webhook, at=at, status_code=status_code, error=error[:500], duration_ms=int(took * 1000)
        )
        webhook.attempts += 1
        webhook.last_status_code = status_code
        webhook.last_error = error[:500]
        webhook.claimed_until = None
        if succeeded:
            webhook.status = SandboxWebhook.DELIVERED
            webhook.delivered_at = at
            webhook.next_attempt_at = None
        elif webhook.attempts <= len(schedule):
            webhook.next_attempt_at = at + timedelta(seconds=schedule[webhook.attempts - 1])
        else:
            webhook.status = SandboxWebhook.FAILED
            webhook.next_attempt_at = None
            logger.warning(
                "sandbox %s webhook #%s %s: gave up after %s attempts", webhook.pg, webhook.pk, webhook.event_type, webhook.attempts
            )
        webhook.save()
    return DeliveryResult(webhook.pk, webhook.event_type, status_code, error, webhook.status)


def _ok(status_code: int, body: bytes) -> bool:
    return status_code == 200


#: Bytes of the shop's answer kept for the PG's acknowledgement check.
ANSWER_LIMIT = 4096


def _post(webhook: SandboxWebhook) -> tuple[int | None, str, float, bytes]:
    try:
        headers = emulator(webhook.pg).delivery_headers(webhook, clock.now())
    except KeyError:  # a PG removed from the sandbox
        headers = dict(webhook.headers or {})
    start = time.monotonic()
    try:
        response = requests.post(
            webhook.url,
            data=webhook.body.encode("utf-8"),
            headers=headers or {"Content-Type": "application/json"},
            timeout=(CONNECT_TIMEOUT, float(conf.webhook_option("TIMEOUT"))),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        took = time.monotonic() - start
        logger.info("sandbox %s webhook #%s to %s: %s", webhook.pg, webhook.pk, webhook.url, type(exc).__name__)
        return None, type(exc).__name__, took, b""
    answer = response.content[:ANSWER_LIMIT]
    took = time.monotonic() - start
    logger.info("sandbox %s webhook #%s %s to %s -> %s", webhook.pg, webhook.pk, webhook.event_type, webhook.url, response.status_code)
    # Whether this answer counts as delivered is the PG's call (webhook_acknowledged).
    return response.status_code, "", took, answer
