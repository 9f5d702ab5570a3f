"""Access tokens an emulated PG hands out, kept in :class:`~.models.SandboxToken` without the token.

A row holds a SHA-256 of the token and a salt; the token itself is derived
again from the salt with the project's ``SECRET_KEY`` (:func:`reveal`), so
the database never holds a usable token. ``subject`` is a SHA-256 of what the
token was asked for with (an API key's public half).

    row = issue("portone", subject, now, lifetime)    # a new token
    reveal(row)                                       # its text, for the answer
    find("portone", text)                             # the row of a presented token (or None)
    latest("portone", subject, now)                   # the newest unexpired row, locked (or None)
    expire_all("portone", now)                        # every token ends now; returns how many
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Sum

from .models import SandboxToken

#: How long a PG's tokens are (hex digits): PortOne V1's are 40; any other PG's 64.
LENGTHS = {"portone": 40}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reveal(row: SandboxToken) -> str:
    """The token of ``row`` (derived from its salt; never stored)."""
    message = f"pgpay-sandbox-{row.pg}-token:{row.salt}".encode()
    token = hmac.new(settings.SECRET_KEY.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return token[: LENGTHS.get(row.pg, 64)]


def issue(pg: str, subject: str, now: datetime, lifetime: timedelta) -> SandboxToken:
    """A new token for ``subject``, valid for ``lifetime`` from ``now`` (sandbox clock)."""
    row = SandboxToken(pg=pg, subject=subject, salt=secrets.token_hex(16), issued_at=now, expires_at=now + lifetime)
    row.digest = _digest(reveal(row))
    row.save()
    return row


def find(pg: str, token: str) -> SandboxToken | None:
    """The row of a token a caller presents (expired or not), or None."""
    return SandboxToken.objects.filter(pg=pg, digest=_digest(token)).first()


def latest(pg: str, subject: str, now: datetime, *, issued_after: datetime | None = None) -> SandboxToken | None:
    """The newest token of ``subject`` still valid at ``now`` (locked for update), or None."""
    rows = SandboxToken.objects.select_for_update().filter(pg=pg, subject=subject, expires_at__gt=now)
    if issued_after is not None:
        rows = rows.filter(issued_at__gt=issued_after)
    return rows.order_by("-issued_at", "-id").first()


def expire_all(pg: str, now: datetime) -> int:
    """Every token of ``pg`` still valid ends at ``now``; returns how many."""
    return SandboxToken.objects.filter(pg=pg, expires_at__gt=now).update(expires_at=now)


def requests(pg: str) -> int:
    """How many token requests ``pg`` answered (counted on the rows)."""
    return SandboxToken.objects.filter(pg=pg).aggregate(total=Sum("requests"))["total"] or 0


def subject_of(key: str) -> str:
    """The ``subject`` of a key (a SHA-256; the key is never stored)."""
    return _digest(key)
