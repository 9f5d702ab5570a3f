"""Stripe's wire formats: bracketed form encoding, the ``Stripe-Signature`` header, object fields.

Used by :mod:`django_pgpay.gateways.stripe` (which re-exports :func:`encode_form`
and :func:`verify_signature`), kept apart as :mod:`.standard_webhooks` is for
PortOne V2: nothing here knows a gateway, an order or a setting.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from ..exceptions import WebhookVerificationError

#: Seconds a webhook signature stays valid (the official SDK's default tolerance).
SIGNATURE_TOLERANCE = 300
#: Key of the Session's and the PaymentIntent's ``metadata`` that holds our order number.
METADATA_ORDER = "order_id"


def encode_form(params: Mapping[str, Any]) -> str:
    """Stripe's form encoding: nested mappings as ``a[b][c]``, lists as ``a[0]``, in the given order.

    Only strings, integers and booleans are sent: an amount must already be an
    ``int`` of minor units, so a Decimal or a float here is a programming error.
    """
    pairs: list[tuple[str, str]] = []

    def walk(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for sub, item in value.items():
                walk(f"{key}[{sub}]" if key else str(sub), item)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(f"{key}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, int):
            pairs.append((key, str(value)))
        elif isinstance(value, str):
            pairs.append((key, value))
        else:
            raise TypeError(f"{key}: {type(value).__name__} is not sent to Stripe (amounts are integers of minor units)")

    walk("", params)
    return urlencode(pairs)


def signature_header_items(header: str) -> tuple[int, list[str]]:
    """``(t, [v1, ...])`` of a ``Stripe-Signature`` header; ``v0`` and unknown schemes are ignored."""
    timestamps, signatures = [], []
    for part in header.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name, value = name.strip(), value.strip()
        if name == "t":
            timestamps.append(value)
        elif name == "v1" and value:
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not timestamps[0].isascii():
        raise WebhookVerificationError("Stripe-Signature has no single timestamp t=")
    if not signatures:
        raise WebhookVerificationError("Stripe-Signature has no v1 signature")
    return int(timestamps[0]), signatures


def verify_signature(body: bytes, header: str, secrets: Sequence[str], *, now: float, tolerance: int = SIGNATURE_TOLERANCE) -> int:
    """Check a ``Stripe-Signature`` header as Stripe's SDK does; return its timestamp.

    Accepted when any ``v1`` equals ``hex(HMAC-SHA256(secret, f"{t}.{body}"))``
    for any of ``secrets`` (two during a rotation), compared in constant time,
    and ``t`` is no older than ``tolerance`` seconds before ``now``. ``body``
    must be the exact bytes received.
    """
    if not header:
        raise WebhookVerificationError("no Stripe-Signature header")
    timestamp, signatures = signature_header_items(header)
    signed = f"{timestamp}.".encode("ascii") + bytes(body)
    given = [s.encode("utf-8", "replace") for s in signatures]
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest().encode("ascii")
        if any(hmac.compare_digest(expected, candidate) for candidate in given):
            break
    else:
        raise WebhookVerificationError("no Stripe-Signature v1 matches the payload")
    if timestamp < now - tolerance:
        raise WebhookVerificationError(f"Stripe-Signature timestamp is more than {tolerance} s old")
    return timestamp


def header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return str(value or "")


def order_number(obj: Mapping[str, Any]) -> str:
    """Our order number on a Session (``client_reference_id``) or PaymentIntent/Charge (``metadata``)."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return str(obj.get("client_reference_id") or metadata.get(METADATA_ORDER) or "")


def latest_charge(intent: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The PaymentIntent's latest Charge when expanded (``charges.data`` before API 2022-11-15)."""
    if not isinstance(intent, Mapping):
        return {}
    charge = intent.get("latest_charge")
    if isinstance(charge, Mapping):
        return charge
    charges = intent.get("charges")
    if isinstance(charges, Mapping) and isinstance(charges.get("data"), list) and charges["data"]:
        first = charges["data"][0]
        return first if isinstance(first, Mapping) else {}
    return {}


__all__ = [
    "METADATA_ORDER",
    "SIGNATURE_TOLERANCE",
    "encode_form",
    "header",
    "latest_charge",
    "order_number",
    "signature_header_items",
    "verify_signature",
]
