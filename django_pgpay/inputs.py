"""Text from outside, checked before it reaches the database.

PostgreSQL refuses NUL (``\\x00``) in text and ``\\u0000`` in JSON, and no
database driver can encode a lone surrogate (``\\ud800``, which JSON can
spell). SQLite takes both, which is how such input once passed the tests and
answered 500 in production. Every boundary of django-pgpay (the return URL,
the cancel form, webhook bodies and headers) refuses such text with a 4xx, or
stores a visibly replaced copy where the input must be kept (the webhook log).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: What no database column of ours may hold: NUL and lone UTF-16 surrogates.
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
#: How deep a JSON body may nest (PG webhooks nest three or four levels).
MAX_JSON_DEPTH = 32


class InvalidInput(ValueError):
    """Text a database cannot store, or a body too big or too deep."""


def forbidden(value: str) -> bool:
    """True when ``value`` holds a character no database of ours stores (NUL, a lone surrogate)."""
    return bool(_FORBIDDEN.search(value))


def replaced(value: str) -> str:
    """``value`` with every such character replaced by U+FFFD (for a copy that must be kept)."""
    return _FORBIDDEN.sub("\ufffd", value)


def has_forbidden_text(data) -> bool:
    """True when a mapping (a ``QueryDict`` too: every value of every key) holds forbidden text, keys included."""
    if hasattr(data, "lists"):
        return any(forbidden(key) or any(forbidden(str(v)) for v in values) for key, values in data.lists())
    return contains_forbidden(data)


def contains_forbidden(value: Any, *, depth: int = 0) -> bool:
    """True when a parsed JSON value holds forbidden text anywhere (keys included)."""
    if depth > MAX_JSON_DEPTH:
        return True
    if isinstance(value, str):
        return forbidden(value)
    if isinstance(value, Mapping):
        return any(forbidden(str(k)) or contains_forbidden(v, depth=depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(contains_forbidden(v, depth=depth + 1) for v in value)
    return False


def clean_text(value: str, *, field: str, max_length: int) -> str:
    """``value`` stripped and cut to ``max_length``; :class:`InvalidInput` when it holds forbidden text."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: not text")
    if forbidden(value):
        raise InvalidInput(f"{field}: contains characters that cannot be stored")
    return value.strip()[:max_length]


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


__all__ = [
    "MAX_JSON_DEPTH",
    "InvalidInput",
    "clean_text",
    "contains_forbidden",
    "forbidden",
    "has_forbidden_text",
    "json_depth",
    "replaced",
]
