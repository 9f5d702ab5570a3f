"""The webhook delivery log: receive, verify, de-duplicate and apply one delivery.

:class:`~django_pgpay.views.WebhookView` calls :func:`receive`; the admin or a
shell can call :func:`process` again on a delivery whose handler failed.

Every delivery is stored first (:class:`~django_pgpay.models.WebhookEvent`,
whatever it contains), then:

0. checked against the gateway's source allowlist, where it has one
   (:meth:`~django_pgpay.gateways.base.BaseGateway.check_webhook_source`);
   a delivery from elsewhere is answered 403;
1. parsed by the gateway; a malformed body is answered 400;
2. compared with earlier deliveries of the same event id: a duplicate of a
   processed one is answered 200 and applied no second time;
3. verified by the gateway (its signature, a per-payment secret, or a lookup
   at the PG); a delivery that cannot be verified is answered 400 and changes
   nothing; a PG that cannot be reached is answered 503, so the PG retries;
4. applied with :func:`django_pgpay.payments.apply_event` to the order the
   *verified* payment names (never the one the body claims).

The answer (:class:`Receipt`) says what the view should send back.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.utils import timezone

from . import conf, payments
from .exceptions import GatewayError, NotFound, OperationRefused, PgPayError, WebhookVerificationError
from .models import WebhookEvent
from .orders import find_order

logger = logging.getLogger("django_pgpay.webhooks")

#: Request headers never stored with a delivery.
UNSTORED_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})


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
    """The request's headers as stored: credentials and cookies left out."""
    return {str(k): str(v)[:2000] for k, v in headers.items() if str(k).lower() not in UNSTORED_HEADERS}


def _address(value) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value or "").strip()))
    except ValueError:
        return None


def receive(gateway, *, headers: Mapping[str, str], body: bytes, remote_addr=None, models: Iterable | None = None) -> Receipt:
    """Store one delivery to ``gateway`` and process it."""
    event = WebhookEvent.objects.create(
        gateway=gateway.alias,
        headers=clean_headers(headers),
        body=body.decode("utf-8", "replace"),
        remote_addr=_address(remote_addr),
    )
    return process(event, gateway=gateway, body=body, models=models)


def _finish(event: WebhookEvent, status: int, *, error: str = "", processed: bool = False) -> Receipt:
    event.error = error[:5000]
    event.processed = processed
    if processed:
        event.processed_at = timezone.now()
    event.save()
    if status >= 400:
        logger.warning("webhook %s #%s: %s %s", event.gateway, event.pk, status, error)
    return Receipt(status=status, event=event, message=error)


def process(event: WebhookEvent, *, gateway=None, body: bytes | None = None, models: Iterable | None = None) -> Receipt:
    """Parse, de-duplicate, verify and apply a stored delivery (again, if it failed before)."""
    if event.processed:
        return Receipt(status=200, event=event)
    gateway = gateway or conf.get_gateway(event.gateway)
    try:
        gateway.check_webhook_source(event.remote_addr, event.headers or {})
    except WebhookVerificationError as exc:
        return _finish(event, 403, error=f"refused source: {exc}")
    raw = body if body is not None else event.body.encode("utf-8")
    try:
        parsed = gateway.parse_received_webhook(event.headers or {}, raw, received_at=event.received_at)
    except PgPayError as exc:
        return _finish(event, 400, error=f"malformed: {exc}")
    event.event_id = parsed.event_id[:255]
    event.event_type = parsed.event_type[:100]
    event.order_number = parsed.order_number[:64]
    event.payment_id = parsed.payment_id[:200]
    event.save(update_fields=["event_id", "event_type", "order_number", "payment_id"])

    if not parsed.payment_id and not parsed.order_number:
        return _finish(event, 200, error=f"ignored: {gateway.pg_name} event type {parsed.event_type}", processed=True)

    if parsed.event_id:
        first = (
            WebhookEvent.objects.filter(gateway=event.gateway, event_id=parsed.event_id, processed=True, duplicate_of=None)
            .exclude(pk=event.pk)
            .order_by("pk")
            .first()
        )
        if first is not None:
            event.duplicate_of = first
            event.verified = first.verified
            return _finish(event, 200, processed=True)

    try:
        order = find_order(parsed.order_number, gateway=gateway.alias, models=models) if parsed.order_number else None
        verified = gateway.verify_webhook(parsed, order.snapshot() if order is not None else None)
    except (WebhookVerificationError, NotFound) as exc:
        return _finish(event, 400, error=f"not verified: {exc}")
    except GatewayError as exc:
        # Authentic or not, we cannot tell now: the PG will deliver it again.
        return _finish(event, 503, error=f"{gateway.pg_name} unavailable: {exc!r}")
    except PgPayError as exc:
        return _finish(event, 400, error=f"not verified: {exc}")
    if not verified.verified or verified.payment is None:
        return _finish(event, 400, error="not verified")
    event.verified = True
    event.save(update_fields=["verified"])

    # Apply to the order the PG names, never to the one the body claims.
    real_number = verified.payment.order_number
    if parsed.order_number and real_number and real_number != parsed.order_number:
        return _finish(event, 400, error=f"the body names order {parsed.order_number}, the PG {real_number}")
    try:
        if order is None or (real_number and order.order_number != real_number):
            order = find_order(real_number, gateway=gateway.alias, models=models)
    except PgPayError as exc:
        return _finish(event, 400, error=str(exc))
    if order is None:
        logger.error("webhook %s #%s: %s has no order %s", event.gateway, event.pk, gateway.pg_name, real_number)
        return _finish(event, 200, error=f"no order {real_number} here")

    try:
        outcome = payments.apply_event(order, verified, webhook_event=event)
    except OperationRefused as exc:
        return _finish(event, 400 if exc.code == "PAYMENT_ORDER_MISMATCH" else 503, error=f"{exc.code}: {exc}")
    except PgPayError as exc:
        return _finish(event, 503, error=f"{exc.code}: {exc!r}")
    except Exception as exc:  # noqa: BLE001 - stored for a retry; the PG delivers again
        logger.exception("webhook %s #%s failed", event.gateway, event.pk)
        return _finish(event, 503, error=f"{type(exc).__name__}: {exc}")
    receipt = _finish(event, 200, processed=True)
    return Receipt(status=200, event=receipt.event, message="; ".join(outcome.changes))
