"""Small pieces of the wire every emulated PG uses: times, amounts off JSON, URLs, secrets.

No PG's names live here; an emulator imports these instead of another
emulator's private helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from django.utils.dateparse import parse_datetime

KST = ZoneInfo("Asia/Seoul")
ALNUM = string.ascii_letters + string.digits


def kst(moment: datetime) -> str:
    """ISO 8601 in Korean time, seconds, ``+09:00`` (Toss, Bootpay)."""
    return moment.astimezone(KST).isoformat(timespec="seconds")


def unix(moment: datetime) -> int:
    """Unix seconds (PortOne V1)."""
    return int(moment.timestamp())


def rfc3339(moment: datetime) -> str:
    """UTC, milliseconds, ``Z`` (PortOne V2)."""
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def when(value: Any) -> datetime | None:
    """A datetime kept as ISO text in a payment's state or session (None for none)."""
    return parse_datetime(value) if isinstance(value, str) and value else None


def parse_krw(value: Any) -> int | None:
    """A whole number of won from JSON (number or digit string), or None."""
    if value is None or isinstance(value, (bool, float)):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.lstrip("-").isdigit() and len(text) < 20:
            return int(text)
    return None


def is_http_url(value: Any) -> bool:
    """An absolute http(s) URL of sane length."""
    if not isinstance(value, str) or len(value) > 2000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def with_query(url: str, params: dict[str, Any]) -> str:
    """``url`` with ``params`` added to its query (None values left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if "?" not in url:
        return f"{url}?{query}"
    return f"{url}{'' if url.endswith(('?', '&')) else '&'}{query}"


def random_text(length: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def digest(text: str) -> str:
    """SHA-256 of ``text``, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def field(data: Any, name: str) -> Any:
    """``data[name]`` when ``data`` is a JSON object, else None."""
    return data.get(name) if isinstance(data, dict) else None
