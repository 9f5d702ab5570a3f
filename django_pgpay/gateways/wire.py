"""Readers of values PGs write on the wire, shared by the gateways.

Times come as ISO 8601 (a time without an offset is Korean time: Toss's
webhook ``createdAt``, Bootpay's receipts) or Unix seconds (PortOne V1);
amounts come as numbers or strings, sometimes written two ways for one value
(``3000`` and ``3000.0``). Each reader answers None (or False) for what it
cannot read: the gateway decides whether that is malformed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from django.utils.dateparse import parse_datetime

from .http import loads_json
from .results import CancelEntry

#: The zone of a PG's time written without an offset.
KOREA = ZoneInfo("Asia/Seoul")
_EPOCH = datetime.fromtimestamp(0, tz=dt_timezone.utc)


def kst_datetime(value) -> datetime | None:
    """ISO 8601 (``T`` or a space between date and time) as an aware datetime; no offset means Korean time."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=KOREA) if parsed.tzinfo is None or parsed.utcoffset() is None else parsed


def unix_datetime(value) -> datetime | None:
    """Unix seconds as an aware datetime; 0 (or nothing) means "not happened"."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or int(value) <= 0:
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=dt_timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def stated_amount(value) -> Decimal | None:
    """An amount a body states, as a finite Decimal; None when it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() else None


def canonical_amount(value) -> str:
    """An amount as text that does not depend on how it was written (3000, 3000.0); "" for none."""
    if value is None or isinstance(value, bool):
        return ""
    try:
        return str(Decimal(str(value)).normalize())
    except ArithmeticError:
        return str(value)


def amount_equals(value, amount: Decimal) -> bool:
    """Does a number (or its text) in a reply equal ``amount``?"""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return False
    stated = stated_amount(value)
    return stated is not None and stated == amount


def json_or_form(body: bytes) -> dict | None:
    """A webhook body sent as a JSON object or as a form (PortOne V1 sends either); None for anything else."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = loads_json(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    pairs = parse_qsl(text, keep_blank_values=True)
    return dict(pairs) if pairs else None


def newest_cancel(cancels: Iterable[CancelEntry]) -> CancelEntry | None:
    """The latest cancel (by time; the last listed among equals): the one a cancel call just made."""
    newest = None
    for entry in cancels:
        if newest is None or (entry.canceled_at or _EPOCH) >= (newest.canceled_at or _EPOCH):
            newest = entry
    return newest


def digest(*parts) -> str:
    """A 40-character digest of ``parts``: the event id of a PG that sends none (equal for a retried delivery)."""
    return hashlib.sha256("\x1f".join(str(p or "") for p in parts).encode("utf-8")).hexdigest()[:40]


__all__ = [
    "KOREA",
    "amount_equals",
    "canonical_amount",
    "digest",
    "json_or_form",
    "kst_datetime",
    "newest_cancel",
    "stated_amount",
    "unix_datetime",
]
