"""The webhook delivery log: receive, verify, de-duplicate and apply one delivery.

:class:`~django_pgpay.views.WebhookView` calls :func:`receive`; the admin,
``pgpay_reconcile`` or a shell call :func:`process` again on a delivery that
*failed* (:func:`retry_failed` does it for every such delivery that is due).

Every delivery is stored first (:class:`~django_pgpay.models.WebhookEvent`,
whatever it contains: too big, too deep or malformed bodies too, with secrets
the PG puts in a body masked and characters no database stores replaced), then:

0. checked against the gateway's source allowlist, where it has one
   (:meth:`~django_pgpay.gateways.base.BaseGateway.check_webhook_source`);
   a delivery from elsewhere is *refused* and answered 403;
1. parsed by the gateway; a malformed body (not JSON, nested too deep, text a
   database refuses) is *refused* and answered 400;
2. verified by the gateway: its signature, a per-payment secret, or a lookup
   at the PG. A delivery that cannot be verified, or whose claims (the status
   it reports) the PG does not confirm, is *refused* (400) and changes
   nothing; a PG that cannot be reached makes it *failed* (503), so the PG
   delivers it again;
3. compared with earlier deliveries by a key built from what the PG
   confirmed (the signed event id, or the fetched payment's state), never
   from the sender's own body: a forged delivery cannot shadow the real one.
   A duplicate of an applied delivery is answered 200 and applied no second
   time;
4. applied with :func:`django_pgpay.payments.apply_event` to the order the
   *verified* payment names (never the one the body claims).

The answer (:class:`Receipt`) says what the view should send back.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from . import conf, inputs, ledger, payments
from .exceptions import (
    AmountMismatch,
    ConfigurationError,
    GatewayError,
    NotFound,
    OperationRefused,
    PgPayError,
    WebhookVerificationError,
    redact,
)
from .models import WebhookEvent
from .orders import find_order
from .status import DONE_DELIVERY_STATUSES, DeliveryStatus

logger = logging.getLogger("django_pgpay.webhooks")

D = DeliveryStatus

#: Request headers never stored with a delivery.
UNSTORED_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
#: The largest body processed (PG webhooks are a few kilobytes); larger ones are stored cut and refused.
MAX_BODY_BYTES = 256 * 1024
#: How often a failed delivery is processed again by :func:`retry_failed`, and the first wait (doubled each time).
MAX_ATTEMPTS = 8
RETRY_BASE = timedelta(minutes=1)
#: Failed deliveries older than this are left to ``pgpay_reconcile --deep-since``.
RETRY_WINDOW = timedelta(days=3)
#: A delivery claimed for applying (applied, not yet processed) longer than this is presumed lost with its process.
CLAIM_TIMEOUT = timedelta(minutes=10)
#: A delivery still *received* this long after it arrived is presumed lost with its task (a worker
#: killed in the middle, a broker that dropped the job, a server stopped between storing and
#: processing): :func:`due_for_retry` hands it to ``pgpay_reconcile``. The PG was answered 2xx and
#: does not deliver it again. Processing it while its task still waits in a long queue is harmless:
#: the delivery is claimed under its order's row lock, and whichever comes second finds it done.
QUEUE_TIMEOUT = timedelta(minutes=30)
#: How long a delivery that was given up keeps ``pgpay_reconcile --check`` failing (a daily check sees it).
GIVEN_UP_NOTICE = timedelta(days=1)
#: What :func:`_screen` reads from a delivery onto its row (each cut to size, NULs refused).
SCREENED_FIELDS = ("event_id", "event_type", "order_number", "payment_id")
#: What processing a delivery writes onto its row (:func:`_finish`); the delivery as received is never rewritten.
FINISHED_FIELDS = (*SCREENED_FIELDS, "verified", "duplicate_of", "status", "error", "processed", "processed_at", "attempts", "attempted_at")


@dataclass(frozen=True)
class Receipt:
    """What became of one delivery: the HTTP status to answer and the stored row."""

    status: int
    event: WebhookEvent
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == 200


def clean_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request's headers as stored: credentials and cookies left out, unstorable characters replaced."""
    return {
        inputs.replaced(str(k))[:200]: inputs.replaced(str(v))[:2000] for k, v in headers.items() if str(k).lower() not in UNSTORED_HEADERS
    }


def storable_body(gateway, body: bytes) -> str:
    """The text of a delivery as it is kept in the log.

    Characters no database stores are replaced. For a PG that signs nothing,
    secrets it puts in the body (Toss's deposit ``secret``) are masked: the
    delivery is verified with the body as received, and processed again from
    the log by a lookup at the PG. Signed bodies are kept as sent (their
    signature covers every byte).

    The masking runs on every delivery, before any check: it writes the body's
    numbers back as the body spelled them (``1E+400000`` as is, never turned
    into its 400,001 digits, which took seconds of CPU per request) and
    replaces an escaped lone surrogate (``"\\udc00"``) like a raw one.
    """
    text = inputs.replaced(body[:MAX_BODY_BYTES].decode("utf-8", "replace"))
    if gateway.signs_webhooks or len(body) > MAX_BODY_BYTES:
        return text
    try:
        if inputs.json_depth(text) > inputs.MAX_JSON_DEPTH:
            return text
        data = json.loads(text, parse_float=_Spelled, parse_int=_Spelled, parse_constant=_Spelled)
    except (ValueError, RecursionError):
        return text
    masked = redact(data)
    if not isinstance(data, dict) or masked == data:
        return text
    marker = f"num{uuid.uuid4().hex}:"  # fresh per call: no text of the body can forge it
    written = json.dumps(_spelled(masked, marker), ensure_ascii=False)
    return inputs.replaced(re.sub(rf'"{marker}([-+.0-9A-Za-z]+)"', r"\1", written))


class _Spelled(str):
    """A number (or ``NaN``) of a delivery's body, as the body spelled it."""


def _spelled(value, marker: str):
    """``value`` with every :class:`_Spelled` number turned into ``marker`` + its text (see :func:`storable_body`)."""
    if isinstance(value, _Spelled):
        return marker + value
    if isinstance(value, dict):
        return {key: _spelled(item, marker) for key, item in value.items()}
    if isinstance(value, list):
        return [_spelled(item, marker) for item in value]
    return value


def _address(value) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value or "").strip()))
    except ValueError:
        return None


def _store(gateway, headers: Mapping[str, str], body: bytes, remote_addr) -> WebhookEvent:
    return WebhookEvent.objects.create(
        gateway=gateway.alias,
        headers=clean_headers(headers),
        body=storable_body(gateway, body),
        remote_addr=_address(remote_addr),
    )


def _too_big(event: WebhookEvent, body: bytes) -> Receipt | None:
    if len(body) > MAX_BODY_BYTES:
        return _finish(event, 413, D.REFUSED, error=f"refused: the body is larger than {MAX_BODY_BYTES} bytes")
    return None


def receive(gateway, *, headers: Mapping[str, str], body: bytes, remote_addr=None, models: Iterable | None = None) -> Receipt:
    """Store one delivery to ``gateway`` and process it (with the body as received)."""
    event = _store(gateway, headers, body, remote_addr)
    return _too_big(event, body) or process(event, gateway=gateway, body=body, headers=headers, models=models)


def accept(gateway, *, headers: Mapping[str, str], body: bytes, remote_addr=None) -> Receipt:
    """Store one delivery and run only the checks the PG needs an answer for (the queued path).

    The size, the source allowlist, the characters and the parse, which checks
    the signature where the PG signs: a delivery that fails them is refused
    now, as :func:`receive` would. One that passes stays *received* and is
    answered 200 (:attr:`Receipt.accepted`); the caller enqueues
    :data:`django_pgpay.tasks.process_delivery`, which verifies it at the PG
    where needed, de-duplicates and applies it with :func:`process`.
    """
    event = _store(gateway, headers, body, remote_addr)
    refused = _too_big(event, body)
    if refused is not None:
        return refused
    try:
        parsed = _screen(event, gateway, body, headers)
    except Exception as exc:  # noqa: BLE001 - a failed delivery, retried with backoff (or raised as it came)
        logger.exception("webhook %s #%s: screening failed", event.gateway, event.pk)
        receipt = _failed_unexpectedly(event, exc)
        if receipt is None:
            raise
        return receipt
    if isinstance(parsed, Receipt):
        return parsed
    # A valid signature is recorded: the worker that processes the delivery later, under settings
    # that may have changed meanwhile (a rotated secret), then never files it as forged (_screen).
    event.verified = bool(gateway.signs_webhooks and parsed.verified)
    event.save(update_fields=[*SCREENED_FIELDS, "verified"])
    return Receipt(status=200, event=event, message="queued")


def _finish(event: WebhookEvent, http_status: int, status: str, *, error: str = "") -> Receipt:
    """Write what became of ``event`` (:data:`FINISHED_FIELDS`), unless another process got further with it.

    One conditional ``UPDATE``: from *received* or *failed*, or from this
    process's own claim (:func:`_claim`). A second worker holding an older copy
    of the delivery (a task delivered twice; ``pgpay_reconcile`` taking a
    delivery whose task was only slow) used to write its copy over the first
    one's result: an applied delivery became *failed* and was processed again.
    """
    event.error = inputs.replaced(error)[:5000]
    event.status = status
    event.processed = status in DONE_DELIVERY_STATUSES
    if event.processed:
        event.processed_at = timezone.now()
    if not _write(event, FINISHED_FIELDS):
        return _moved_on(event)
    if http_status >= 400:
        logger.warning("webhook %s #%s: %s %s", event.gateway, event.pk, http_status, event.error)
    return Receipt(status=http_status, event=event, message=event.error)


def _write(event: WebhookEvent, fields) -> bool:
    """Write ``fields`` of ``event`` if it is still where this process found it (see :func:`_finish`); False if not."""
    where = Q(status=D.APPLIED, processed=False) if getattr(event, "_pgpay_claimed", False) else Q(status__in=(D.RECEIVED, D.FAILED))
    return bool(WebhookEvent.objects.filter(where, pk=event.pk).update(**{name: getattr(event, name) for name in fields}))


def _moved_on(event: WebhookEvent) -> Receipt:
    """The answer for a delivery another process finished (or claimed) meanwhile: what it made of it stands."""
    event.refresh_from_db()
    logger.info("webhook %s #%s: processed by another process meanwhile (%s)", event.gateway, event.pk, event.status)
    if event.status == D.REFUSED:
        return Receipt(status=400, event=event, message=event.error)
    if event.status == D.APPLIED:
        return Receipt(status=200, event=event, message="applied by another process")
    if event.processed:
        return Receipt(status=200, event=event, message="processed by another process")
    return Receipt(status=503, event=event, message=event.error)


def reopen(event: WebhookEvent) -> None:
    """Put a *refused* delivery back to *failed*, so that :func:`process` may process it again.

    For a person's decision (the admin's *Re-process*): a delivery refused
    under settings that were wrong then. Nothing else ever retries a refusal.
    """
    if event.status == D.REFUSED and WebhookEvent.objects.filter(pk=event.pk, status=D.REFUSED).update(status=D.FAILED):
        event.status = D.FAILED


def fail(event: WebhookEvent, error: str) -> Receipt:
    """Mark a stored delivery *failed* (answered 503): the PG delivers it again and ``pgpay_reconcile`` retries it."""
    return _finish(event, 503, D.FAILED, error=error)


def process(
    event: WebhookEvent,
    *,
    gateway=None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    models: Iterable | None = None,
) -> Receipt:
    """Check, verify, de-duplicate and apply a stored delivery (again, when it failed before).

    ``body`` and ``headers`` are the delivery as received; without them (a
    delivery processed again from the log) the stored copies are used.

    Whatever goes wrong, the attempt is counted: an error no step expected (a
    gateway's parser or ``verify_webhook`` raising ``TypeError``, a database
    refusing a value) marks the delivery *failed* with the error, answered 503,
    so its retries wait :data:`RETRY_BASE` doubled per attempt and stop after
    :data:`MAX_ATTEMPTS`, instead of running at every ``pgpay_reconcile``.
    """
    if event.status in DONE_DELIVERY_STATUSES:
        return Receipt(status=200, event=event)
    event.attempts += 1
    event.attempted_at = timezone.now()
    headers = headers if headers is not None else (event.headers or {})
    try:
        # Inside: a gateway no longer configured is a failed attempt, counted and retried (and given
        # up, which --check reports), never a task that raises for ever without a trace on the row.
        gateway = gateway or conf.get_gateway(event.gateway)
        return _process(event, gateway, body, headers, models)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt (or raised as it came)
        logger.exception("webhook %s #%s: processing failed", event.gateway, event.pk)
        receipt = _failed_unexpectedly(event, exc)
        if receipt is None:
            raise
        return receipt


def _failed_unexpectedly(event: WebhookEvent, exc: Exception) -> Receipt | None:
    """Mark ``event`` failed (503, its attempt counted) after an error no step expected; None when it cannot or should not be.

    Only the status, the error, the attempt and what the screening read (the
    event id and type, order number and payment id: cut to size and free of
    NULs, so the admin links the delivery to its order) are written, in one
    conditional ``UPDATE``; whatever else the failed step had set in memory, a
    value the database refused included, is not. Not when the delivery got further
    (claimed for applying: the claim's own timeout hands it back, see
    :data:`CLAIM_TIMEOUT`), nor when the database itself fails (nothing can be
    written: the caller raises the error as it came).
    """
    error = inputs.replaced(f"{type(exc).__name__}: {exc}")[:5000]
    try:
        updated = WebhookEvent.objects.filter(pk=event.pk, status__in=(D.RECEIVED, D.FAILED)).update(
            status=D.FAILED,
            processed=False,
            error=error,
            attempts=event.attempts,
            attempted_at=event.attempted_at,
            **{name: getattr(event, name) for name in SCREENED_FIELDS},
        )
    except Exception:  # noqa: BLE001 - the database fails too: the caller raises the original error
        logger.exception("webhook %s #%s: the failure could not be recorded", event.gateway, event.pk)
        return None
    if not updated:
        return None
    event.status, event.processed, event.error = D.FAILED, False, error
    logger.warning("webhook %s #%s: 503 %s", event.gateway, event.pk, error)
    return Receipt(status=503, event=event, message=error)


def _process(event: WebhookEvent, gateway, body: bytes | None, headers: Mapping[str, str], models) -> Receipt:
    """:func:`process` once the attempt is counted."""
    parsed = _screen(event, gateway, body, headers)
    if isinstance(parsed, Receipt):
        return parsed

    if not parsed.payment_id and not parsed.order_number:
        return _finish(event, 200, D.IGNORED, error=f"ignored: {gateway.pg_name} event type {parsed.event_type}")
    if gateway.signs_webhooks and parsed.verified:
        # The signature proves the event id: a repeat is known without asking the PG.
        duplicate = _applied(event, parsed.event_id[:255])
        if duplicate is not None:
            event.verified = True
            event.duplicate_of = duplicate
            return _finish(event, 200, D.DUPLICATE)

    try:
        order = find_order(parsed.order_number, gateway=gateway.alias, models=models) if parsed.order_number else None
        verified = gateway.verify_webhook(parsed, order.snapshot() if order is not None else None)
    except (WebhookVerificationError, NotFound) as exc:
        return _finish(event, 400, D.REFUSED, error=f"not verified: {exc}")
    except GatewayError as exc:
        # Authentic or not, we cannot tell now: the PG will deliver it again.
        return _finish(event, 503, D.FAILED, error=f"{gateway.pg_name} unavailable: {exc!r}")
    except ConfigurationError as exc:
        # The shop's settings (a key missing), not the delivery: failed, retried once they are right.
        return _finish(event, 503, D.FAILED, error=f"configuration: {exc}")
    except PgPayError as exc:
        return _finish(event, 400, D.REFUSED, error=f"not verified: {exc}")
    if not verified.verified or verified.payment is None:
        return _finish(event, 400, D.REFUSED, error="not verified")
    verdict = gateway.webhook_claim_verdict(parsed, verified)
    said = f"the body says {gateway.webhook_claim(parsed)!r}, {gateway.pg_name} says {gateway.webhook_claim(verified)!r}"
    if verdict == gateway.CLAIM_REFUSED:
        return _finish(event, 400, D.REFUSED, error=f"not verified: {said}")
    if verdict == gateway.CLAIM_STALE:
        # A real, late delivery of an earlier step (the PG's later one carries the rest): nothing to apply from it.
        return _finish(event, 200, D.IGNORED, error=f"stale: {said}; nothing applied from it")
    event.verified = True

    # Apply to the order the PG names, never to the one the body claims.
    real_number = verified.payment.order_number
    if parsed.order_number and real_number and real_number != parsed.order_number:
        return _finish(event, 400, D.REFUSED, error=f"the body names order {parsed.order_number}, the PG {real_number}")

    # De-duplicate by what the PG confirmed: the signed id, or the fetched payment's state.
    key = gateway.webhook_dedup_key(verified)[:255]
    event.event_id = key
    if not _write(event, ["event_id", "event_type", "order_number", "payment_id", "verified", "attempts", "attempted_at"]):
        return _moved_on(event)
    first = _applied(event, key)
    if first is not None:
        event.duplicate_of = first
        return _finish(event, 200, D.DUPLICATE)

    try:
        if order is None or (real_number and order.order_number != real_number):
            order = find_order(real_number, gateway=gateway.alias, models=models)
    except PgPayError as exc:
        return _finish(event, 400, D.REFUSED, error=str(exc))
    if order is None:
        logger.error("webhook %s #%s: %s has no order %s", event.gateway, event.pk, gateway.pg_name, real_number)
        return _finish(event, 200, D.IGNORED, error=f"no order {real_number} here")

    claim = _claim(event, order, key)
    if claim is TAKEN:
        return _moved_on(event)
    if claim is not None:
        event.duplicate_of = claim
        return _finish(event, 200, D.DUPLICATE)

    try:
        outcome = payments.apply_event(order, verified, webhook_event=event)
    except AmountMismatch as exc:
        # Recorded: the order failed and the money is being given back. The delivery did its part.
        receipt = _finish(event, 200, D.APPLIED)
        return Receipt(status=200, event=receipt.event, message=f"amount mismatch: {exc}")
    except OperationRefused as exc:
        if exc.code == "PAYMENT_ORDER_MISMATCH":
            return _finish(event, 400, D.REFUSED, error=f"{exc.code}: {exc}")
        return _finish(event, 503, D.FAILED, error=f"{exc.code}: {exc}")
    except PgPayError as exc:
        return _finish(event, 503, D.FAILED, error=f"{exc.code}: {exc!r}")
    except Exception as exc:  # noqa: BLE001 - stored for a retry; the PG delivers again
        logger.exception("webhook %s #%s failed", event.gateway, event.pk)
        return _finish(event, 503, D.FAILED, error=f"{type(exc).__name__}: {exc}")
    receipt = _finish(event, 200, D.APPLIED)
    return Receipt(status=200, event=receipt.event, message="; ".join(outcome.changes))


def _screen(event: WebhookEvent, gateway, body: bytes | None, headers: Mapping[str, str]):
    """Steps 0 to 1: the source, the characters, the parse (a signature where the PG signs): the parsed event, or a refusal.

    Cheap and local, no PG is called: :func:`accept` runs them in the PG's
    request on the queued path, :func:`process` again where it applies.
    """
    try:
        gateway.check_webhook_source(event.remote_addr, event.headers or {})
    except WebhookVerificationError as exc:
        return _finish(event, 403, D.REFUSED, error=f"refused source: {exc}")
    raw = body if body is not None else event.body.encode("utf-8")
    if inputs.forbidden(raw.decode("utf-8", "replace")) or any(inputs.forbidden(str(k) + str(v)) for k, v in headers.items()):
        return _finish(event, 400, D.REFUSED, error="malformed: characters no database stores (NUL)")
    try:
        parsed = gateway.parse_received_webhook(headers, raw, received_at=event.received_at)
    except ConfigurationError as exc:
        # A secret missing from the shop's settings says nothing about the delivery: failed (503), retried.
        return _finish(event, 503, D.FAILED, error=f"configuration: {exc}")
    except PgPayError as exc:
        if event.verified:
            # Its signature was valid when it came (accept()); the settings changed since (a rotated
            # secret): a real delivery, answered 2xx, that must not be filed as forged and dropped.
            return _finish(event, 503, D.FAILED, error=f"signed validly when received, not verifiable with the settings now: {exc}")
        return _finish(event, 400, D.REFUSED, error=f"malformed: {exc}")
    except ValueError as exc:  # a gateway's parser met text it cannot read
        return _finish(event, 400, D.REFUSED, error=f"malformed: {exc}")
    if inputs.contains_forbidden(dict(parsed.raw)) or any(
        inputs.forbidden(v) for v in (parsed.event_id, parsed.event_type, parsed.order_number, parsed.payment_id)
    ):
        return _finish(event, 400, D.REFUSED, error="malformed: characters no database stores (\\u0000)")
    event.event_id = parsed.event_id[:255]
    event.event_type = parsed.event_type[:100]
    event.order_number = parsed.order_number[:64]
    event.payment_id = parsed.payment_id[:200]
    return parsed


#: What :func:`_claim` answers when the same delivery was claimed by another process.
TAKEN = object()


def _claim(event: WebhookEvent, order, key: str):
    """Make ``event`` the one delivery of ``key`` that is applied, under the order's row lock.

    Every process that would apply a delivery of the same verified event to
    the same order takes that order's row lock first, so two workers (or a
    worker and the PG's repeat in a request) cannot both find "not applied
    yet": the first marks its delivery applied (``processed`` stays False
    until it finishes) and commits; the others find it and become duplicates.
    Answers None (apply it), :data:`TAKEN` (this very delivery is claimed by
    another process) or the delivery it duplicates.
    """
    with ledger.atomic(order):
        ledger.lock_order(order)
        if WebhookEvent.objects.filter(pk=event.pk, status=D.APPLIED).exists():
            return TAKEN
        first = _applied(event, key)
        if first is not None:
            return first
        claimed = WebhookEvent.objects.filter(pk=event.pk, status__in=(D.RECEIVED, D.FAILED)).update(
            status=D.APPLIED, processed=False, attempted_at=event.attempted_at
        )
        if not claimed:  # another process finished it meanwhile (refused, ignored, failed and claimed again)
            return TAKEN
        event.status, event.processed = D.APPLIED, False
        event._pgpay_claimed = True  # _finish writes from this claim only
    return None


def _applied(event: WebhookEvent, key: str) -> WebhookEvent | None:
    """The first applied delivery of ``event``'s gateway with the verified key ``key``."""
    if not key:
        return None
    return (
        WebhookEvent.objects.filter(gateway=event.gateway, event_id=key, status=D.APPLIED, duplicate_of=None)
        .exclude(pk=event.pk)
        .order_by("pk")
        .first()
    )


def due_for_retry(*, now=None):
    """Deliveries that failed, or were never processed, and are due to be processed (oldest first).

    A failed delivery waits :data:`RETRY_BASE` doubled per attempt before the
    next one, at most :data:`MAX_ATTEMPTS` attempts, within :data:`RETRY_WINDOW`
    of its arrival. A delivery still *received* :data:`QUEUE_TIMEOUT` after it
    arrived (its task or its request was lost) is due at once, however old:
    it was never processed.
    """
    now = now or timezone.now()
    # A delivery claimed by a worker that died before it finished (see _claim) is failed again.
    WebhookEvent.objects.filter(status=D.APPLIED, processed=False, attempted_at__lt=now - CLAIM_TIMEOUT).update(
        status=D.FAILED, error="claimed by a process that did not finish"
    )
    failed = WebhookEvent.objects.filter(status=D.FAILED, attempts__lt=MAX_ATTEMPTS, received_at__gte=now - RETRY_WINDOW)
    # Never processed: whatever its age (RETRY_WINDOW bounds retries, and this is the first try).
    lost = WebhookEvent.objects.filter(status=D.RECEIVED, attempts__lt=MAX_ATTEMPTS, received_at__lt=now - QUEUE_TIMEOUT)
    candidates = (failed | lost).order_by("received_at", "pk")
    for event in candidates.iterator():
        if _is_due(event, now):
            yield event


def _is_due(event: WebhookEvent, now) -> bool:
    """A received delivery is always due; a failed one once its backoff has passed (:data:`RETRY_BASE` doubled per attempt)."""
    if event.status == D.RECEIVED:
        return True
    if event.status != D.FAILED:
        return False
    wait = RETRY_BASE * (2 ** max(event.attempts - 1, 0))
    return event.attempted_at is None or event.attempted_at + wait <= now


def take_attempt(event: WebhookEvent, *, now=None) -> bool:
    """Whether this process may process ``event`` now: it is due, and no other process took this attempt first.

    One conditional ``UPDATE`` of the attempt's time (from the time this
    process read): of two tasks of the same delivery run at once (a task
    delivered twice, a retry ``pgpay_reconcile --enqueue`` added beside the
    task's own deferred one), one goes on, the other finds it taken; and a task
    that comes later finds the delivery not due, so retries keep their backoff
    (:data:`MAX_ATTEMPTS` used to be spent in half the time when workers lagged).
    """
    now = now or timezone.now()
    if not _is_due(event, now):
        return False
    read = Q(attempted_at__isnull=True) if event.attempted_at is None else Q(attempted_at=event.attempted_at)
    if not WebhookEvent.objects.filter(read, pk=event.pk, status=event.status, attempts=event.attempts).update(attempted_at=now):
        return False
    event.attempted_at = now
    return True


def given_up(*, now=None):
    """Failed deliveries no longer retried, whose last try was within :data:`GIVEN_UP_NOTICE` (oldest first).

    A delivery is given up after :data:`MAX_ATTEMPTS` tries, or once it is
    older than :data:`RETRY_WINDOW`. What it would have applied still reaches
    the order through the PG's own deliveries and ``pgpay_reconcile
    --deep-since`` (a lookup at the PG), but a person should know why it kept
    failing (a PG down for hours, a bug): ``pgpay_reconcile`` lists these and
    ``--check`` fails while there are any.
    """
    now = now or timezone.now()
    return (
        WebhookEvent.objects.filter(status=D.FAILED, attempted_at__gte=now - GIVEN_UP_NOTICE)
        .filter(Q(attempts__gte=MAX_ATTEMPTS) | Q(received_at__lt=now - RETRY_WINDOW))
        .exclude(_delivered_again())
        .order_by("received_at", "pk")
    )


def _delivered_again() -> Q:
    """A failed delivery whose content reached its order through another delivery: nothing is missing.

    Either another delivery of the same event id was applied (a signed id is
    proved by its signature), or, for a PG whose deliveries are not signed,
    another delivery about the same payment was applied after this one
    arrived: its content was checked by looking the payment up at the PG, so
    it applied the payment's state as it was then, which includes whatever
    this delivery reported. A failed delivery read no further than its
    screening keeps what the body claims, never the verified key: the first
    rule then matches only a signed id, the second the body's payment id.
    A *duplicate* delivery does not count: it was marked so against a delivery
    being applied, which may have failed since (this one, perhaps); the
    delivery it copied counts if it was applied.
    """
    applied = WebhookEvent.objects.filter(gateway=OuterRef("gateway"), status=D.APPLIED, processed=True)
    same_event = Exists(applied.filter(event_id=OuterRef("event_id")))
    same_payment_later = Exists(applied.filter(payment_id=OuterRef("payment_id"), processed_at__gte=OuterRef("received_at")))
    unsigned = [alias for alias in conf.gateway_aliases() if not _signs_webhooks(alias)]
    return (~Q(event_id="") & same_event) | (Q(gateway__in=unsigned) & ~Q(payment_id="") & same_payment_later)


def _signs_webhooks(alias: str) -> bool:
    """Whether ``alias``'s PG signs its deliveries (an unknown or broken configuration counts as not)."""
    try:
        return bool(conf.get_gateway(alias).signs_webhooks)
    except ConfigurationError:  # a gateway that cannot be built here is judged by its payment id
        return False


def retry_failed(*, now=None, gateways: Iterable[str] | None = None) -> list[Receipt]:
    """Process every delivery :func:`due_for_retry` names (``pgpay_reconcile`` calls this).

    A delivery the PG never delivers again (PortOne V1 sends once, and no PG
    sends again what was answered 2xx before its task was lost) is applied
    this way once the shop can process it.
    """
    wanted = set(gateways or ())
    receipts = []
    for event in list(due_for_retry(now=now)):
        if wanted and event.gateway not in wanted:
            continue
        if event.gateway not in conf.gateway_aliases():
            continue
        locked = WebhookEvent.objects.filter(pk=event.pk, status__in=(D.FAILED, D.RECEIVED)).first()
        if locked is None or not take_attempt(locked, now=now):
            continue  # processed meanwhile (the PG delivered it again, another run took it)
        try:
            receipts.append(process(locked))
        except Exception:  # noqa: BLE001 - one delivery must not stop the others
            logger.exception("webhook %s #%s: processing again failed", event.gateway, event.pk)
    return receipts


__all__ = [
    "CLAIM_TIMEOUT",
    "GIVEN_UP_NOTICE",
    "MAX_ATTEMPTS",
    "MAX_BODY_BYTES",
    "QUEUE_TIMEOUT",
    "Receipt",
    "accept",
    "clean_headers",
    "fail",
    "due_for_retry",
    "given_up",
    "process",
    "receive",
    "reopen",
    "retry_failed",
    "take_attempt",
]
