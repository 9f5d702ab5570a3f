"""Idempotency keys as PGs implement them: the first answer is kept and replayed.

The identity of a request is (PG, key, API key, HTTP method, path); the body
is not part of it (Toss replays the first answer even to a different body).
A PG that compares parameters (Stripe) scopes the identity to the key and the
API key and passes a ``fingerprint`` of the method, path and parameters: a
repeat with another fingerprint is a ``"mismatch"``. While the first request
runs, its row is "in flight" and a repeat is told to come back later. Only a
SHA-256 of the identity is stored, never the API key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import SandboxIdempotency

#: Real seconds after which an in-flight row is presumed abandoned (its
#: process died) and a repeat may run again.
IN_FLIGHT_LEASE = timedelta(seconds=120)


@dataclass(frozen=True)
class StoredAnswer:
    """An answer kept for replay."""

    status: int
    content_type: str
    body: str


@dataclass(frozen=True)
class Claim:
    """What :func:`begin` found: ``"new"`` (run it), ``"replay"``, ``"mismatch"`` or ``"in_flight"``."""

    outcome: str
    row_id: int | None = None
    answer: StoredAnswer | None = None
    #: The path the key was first used on (for a mismatch's message).
    path: str = ""


def identity(pg: str, key: str, api_key: str, method: str, path: str) -> str:
    """SHA-256 over the parts that make two requests the same (NUL-separated)."""
    raw = "\0".join((pg, key, api_key, method.upper(), path))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def begin(
    pg: str,
    key: str,
    api_key: str,
    method: str,
    path: str,
    *,
    now: datetime,
    lifetime: timedelta,
    fingerprint: str = "",
    request_path: str = "",
) -> Claim:
    """Claim ``key`` for this request, or say why it must not run.

    ``method`` and ``path`` are the identity's scope; ``request_path`` (default
    ``path``) is what is recorded; a non-empty ``fingerprint`` must match the
    first request's.
    """
    ident = identity(pg, key, api_key, method, path)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                row = SandboxIdempotency.objects.create(
                    identity=ident,
                    pg=pg,
                    idempotency_key=key,
                    method=method.upper(),
                    path=(request_path or path)[:500],
                    fingerprint=fingerprint,
                    created_at=now,
                )
            return Claim("new", row_id=row.pk)
        except IntegrityError:
            pass
        row = SandboxIdempotency.objects.filter(identity=ident).first()
        if row is None:  # released meanwhile: try again
            continue
        if row.status is not None:
            if now - row.created_at > lifetime:
                SandboxIdempotency.objects.filter(pk=row.pk, status=row.status).delete()
                continue
            if fingerprint and row.fingerprint != fingerprint:
                return Claim("mismatch", row_id=None, path=row.path)
            return Claim("replay", row_id=row.pk, answer=StoredAnswer(row.status, row.content_type, row.body), path=row.path)
        real_now = timezone.now()
        if real_now - row.started_at > IN_FLIGHT_LEASE:
            taken = SandboxIdempotency.objects.filter(pk=row.pk, status__isnull=True, started_at=row.started_at).update(started_at=real_now)
            if taken:
                return Claim("new", row_id=row.pk)
        return Claim("in_flight", row_id=row.pk)
    return Claim("in_flight")


def finish(row_id: int, status: int, content_type: str, body: str) -> None:
    """Keep the answer of a claimed request for replay."""
    SandboxIdempotency.objects.filter(pk=row_id).update(status=status, content_type=content_type, body=body, completed_at=timezone.now())


def release(row_id: int) -> None:
    """Forget a claim whose request changed nothing (a retry may run again)."""
    SandboxIdempotency.objects.filter(pk=row_id, status__isnull=True).delete()
