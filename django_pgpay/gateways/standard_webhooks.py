"""Standard Webhooks signatures (``standardwebhooks.com``), as PortOne V2 signs its deliveries.

A delivery carries three headers:

* ``webhook-id``: the message id (the same for every retry of one message);
* ``webhook-timestamp``: Unix seconds when it was signed;
* ``webhook-signature``: space-separated ``v1,<base64 signature>`` entries.

The signature is HMAC-SHA256 over ``"{id}.{timestamp}.{raw body}"`` keyed by the
secret, which is given as ``whsec_<base64>`` (the prefix is optional) and
used base64-decoded. A delivery is accepted when one ``v1`` entry matches one
of the configured secrets (two during a rotation) and its timestamp is within
:data:`TOLERANCE` seconds of now, in either direction.

This is the algorithm of PortOne's own ``portone_server_sdk.webhook.verify``
(the test suite cross-checks the two); nothing here is PortOne-specific.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from ..exceptions import WebhookVerificationError

#: Seconds a signature stays valid on either side of ``webhook-timestamp``.
TOLERANCE = 300
SECRET_PREFIX = "whsec_"
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def decode_secret(secret: str | bytes) -> bytes:
    """The raw HMAC key of a ``whsec_…`` secret; ``ValueError`` when it is not base64 or empty."""
    if isinstance(secret, (bytes, bytearray)):
        raw = bytes(secret)
    else:
        text = str(secret).strip()
        if text.startswith(SECRET_PREFIX):
            text = text[len(SECRET_PREFIX) :]
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the webhook secret is not base64") from exc
    if not raw:
        raise ValueError("the webhook secret is empty")
    return raw


def sign(secret: str | bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) of one delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, whatever its case (stored deliveries keep Django's ``Webhook-Id`` spelling)."""
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return str(value)
    return ""


def verify(secrets: Iterable[str | bytes], headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
    """Check one delivery's signature and timestamp; return its message id.

    Raises :class:`~django_pgpay.exceptions.WebhookVerificationError` saying
    which check failed (never echoing a secret or a signature).
    """
    msg_id, stamp, signatures = (header(headers, name) for name in HEADERS)
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header", code="MISSING_HEADERS")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number", code="INVALID_TIMESTAMP") from None
    now = time.time() if now is None else now
    if now - timestamp > TOLERANCE:
        raise WebhookVerificationError("webhook-timestamp is too old", code="TIMESTAMP_TOO_OLD")
    if timestamp - now > TOLERANCE:
        raise WebhookVerificationError("webhook-timestamp is in the future", code="TIMESTAMP_TOO_NEW")
    offered = []
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    signed = f"{msg_id}.{stamp}.".encode() + body
    for secret in secrets:
        expected = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msg_id
    raise WebhookVerificationError("no matching webhook signature", code="NO_MATCHING_SIGNATURE")


__all__ = ["HEADERS", "TOLERANCE", "decode_secret", "header", "sign", "verify"]
