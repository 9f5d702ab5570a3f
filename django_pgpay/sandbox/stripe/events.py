"""Stripe's events: recorded for ``/v1/events``, delivered as signed webhooks through the sandbox's outbox.

An event carries the object as it was when the event happened, the API
version the sandbox announces, and the request that caused it. Each delivery
attempt is signed anew (``Stripe-Signature: t=…,v1=…``, one ``v1`` per
signing secret while a secret is rolled); any 2xx is an acknowledgement.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import time
from datetime import datetime
from typing import Any

from .. import faults, webhooks
from ..base import Answer, ApiContext
from ..models import SandboxPayment
from . import wire

#: Event types a webhook endpoint gets by default: the ones docs/stripe.rst
#: tells a shop to subscribe to. ``"*"`` in ``WEBHOOK_EVENTS`` sends every type.
DEFAULT_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
)
#: Headers of a delivery (the signature is added at each attempt).
DELIVERY_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "Cache-Control": "no-cache",
}


class Events:
    """Recording events and signing their deliveries; mixed into the emulator."""

    def delivery_headers(self, webhook, now: datetime) -> dict[str, str]:
        """Sign the stored body now: ``t=<unix time>,v1=<HMAC-SHA256(secret, "t.body")>`` per secret."""
        headers = dict(webhook.headers or {})
        note = headers.pop(faults.SIGNATURE_FAULT_HEADER, "")
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("x-sandbox-")}
        secrets_ = self.signing_secrets()
        # The shop checks freshness against its real clock, so real time it is.
        timestamp = int(time.time())
        # A signature fault spoils the first attempt; Stripe's retries are signed anew, correctly.
        kind, _, seconds = note.partition(":") if not webhook.attempts else ("", "", "")
        if kind == "stale_signature":
            timestamp -= int(float(seconds or 600))
        elif kind == "wrong_secret":
            secrets_ = ["whsec_" + hashlib.sha256(str(webhook.pk).encode()).hexdigest()[:32]]
        if secrets_:
            signed = f"{timestamp}.".encode() + webhook.body.encode("utf-8")
            parts = [f"t={timestamp}"] + [
                "v1=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest() for secret in secrets_
            ]
            headers["Stripe-Signature"] = ",".join(parts)
        return headers

    def webhook_acknowledged(self, status_code: int, body: bytes) -> bool:
        return 200 <= status_code < 300

    def _event(self, event_type: str, obj: dict, now: datetime, *, order_id="", ctx=None, previous=None, origin="") -> dict[str, Any]:
        """Record an event (``/v1/events``) and queue its webhook if the endpoint wants the type."""
        data = {"object": copy.deepcopy(obj), **({"previous_attributes": previous} if previous else {})}
        request = {"id": None, "idempotency_key": None}
        if ctx is not None:
            request = {"id": wire.request_id_of(ctx), "idempotency_key": ctx.request.headers.get(self.idempotency_header)}
        url, wanted = self.webhook_url(origin), self.events_wanted()
        send = bool(url) and ("*" in wanted or event_type in wanted)
        event = {"id": wire.random_id("evt"), "object": "event", "api_version": self.api_version(), "created": wire.ts(now), "data": data}
        event.update(livemode=False, pending_webhooks=int(send), request=request, type=event_type)
        notes = {"type": event_type}
        SandboxPayment.objects.create(pg=self.name, key=event["id"], order_id=order_id[:100], status="event", state=event, session=notes)
        if send:
            headers, key = dict(DELIVERY_HEADERS), str(obj.get("id") or "")
            webhooks.enqueue(self.name, event_type, wire.json_text(event), url=url, payment_key=key, headers=headers, now=now)
        return event

    def _tell(self, session_row, now: datetime, *happened: tuple[str, SandboxPayment], ctx: ApiContext | None = None) -> None:
        """Record what happened to each row (an event of its object and order), delivered to the shop that made the Session."""
        origin = session_row.session.get("webhook_origin", "") if session_row is not None else ""
        for event_type, row in happened:
            self._event(event_type, row.state, now, order_id=row.order_id, ctx=ctx, origin=origin)

    def api_retrieve_event(self, ctx: ApiContext, fault=None, event_id: str = "") -> Answer:
        return self._retrieve(ctx, event_id, "evt_", "event")


def events(event_type: str | None = None) -> list[dict[str, Any]]:
    """Every event recorded (oldest first), as ``/v1/events`` holds them."""
    rows = SandboxPayment.objects.filter(pg="stripe", key__startswith="evt_").order_by("id")
    found = [row.state for row in rows]
    return [e for e in found if event_type is None or e["type"] == event_type]
