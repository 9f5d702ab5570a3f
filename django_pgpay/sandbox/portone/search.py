"""``GET /payments`` of PortOne V2 (결제 다건 조회, page based): the filters a shop uses.

The request is ``GetPaymentsBody`` (``{page: {number, size}, filter: {...}}``),
sent as a JSON body or, as the official SDK does, JSON in the ``requestBody``
query parameter. Emulated filters (names of ``PaymentFilterInput`` in the V2
OpenAPI file): ``storeId``, ``timestampType`` with ``from``/``until`` (default:
the 90 days before ``until``, which defaults to now), ``status``, ``methods``,
``isTest``, ``currency``, ``sortBy``/``sortOrder`` and ``textSearch`` on
``PAYMENT_ID``, ``TX_ID``, ``ORDER_NAME``, ``CUSTOMER_NAME``,
``CUSTOMER_EMAIL`` and ``ALL``. The others (escrow, cash receipts, card
brands ...) are accepted and ignored. ``(number + 1) * size`` may not exceed
60,000 (the spec). The answer is ``GetPaymentsResponse``: ``{items, page:
{number, size, totalCount}}``, ``totalCount`` being, as the spec says, the
number of items returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from ..base import ApiError

#: ``PaymentMethodType`` -> ``method.type`` of the Payment object.
METHOD_TYPES = {
    "CARD": "PaymentMethodCard",
    "TRANSFER": "PaymentMethodTransfer",
    "VIRTUAL_ACCOUNT": "PaymentMethodVirtualAccount",
    "GIFT_CERTIFICATE": "PaymentMethodGiftCertificate",
    "MOBILE": "PaymentMethodMobile",
    "EASY_PAY": "PaymentMethodEasyPay",
    "CONVENIENCE_STORE": "PaymentMethodConvenienceStore",
    "CRYPTO": "PaymentMethodCrypto",
}
STATUSES = frozenset({"READY", "PENDING", "VIRTUAL_ACCOUNT_ISSUED", "PAID", "FAILED", "PARTIAL_CANCELLED", "CANCELLED"})
#: ``timestampType`` / ``sortBy`` -> the Payment's field.
TIMESTAMPS = {"CREATED_AT": "requestedAt", "STATUS_CHANGED_AT": "statusChangedAt"}
SORTS = {"REQUESTED_AT": "requestedAt", "STATUS_CHANGED_AT": "statusChangedAt"}
#: ``textSearch`` fields -> where they look in the Payment.
TEXT_FIELDS = {
    "PAYMENT_ID": ("id",),
    "TX_ID": ("transactionId",),
    "ORDER_NAME": ("orderName",),
    "CUSTOMER_NAME": ("customer.name",),
    "CUSTOMER_EMAIL": ("customer.email",),
}
PAGE_LIMIT = 60_000
DEFAULT_RANGE = timedelta(days=90)


@dataclass(frozen=True)
class Query:
    """A parsed ``GetPaymentsBody``."""

    number: int
    size: int
    filter: dict[str, Any]


def _invalid(message: str) -> ApiError:
    return ApiError("INVALID_REQUEST", message)


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(f"{name}는 0 이상의 정수여야 합니다.")
    return value


def parse(body: Any) -> Query:
    """The request's page and filter; ``ApiError`` (INVALID_REQUEST) for what PortOne refuses."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _invalid("요청 본문이 올바르지 않습니다.")
    page = body.get("page") or {}
    filters = body.get("filter") or {}
    if not isinstance(page, dict) or not isinstance(filters, dict):
        raise _invalid("page와 filter는 객체여야 합니다.")
    number, size = _int(page.get("number"), "page.number", 0), _int(page.get("size"), "page.size", 10)
    if size == 0 or (number + 1) * size > PAGE_LIMIT:
        raise _invalid(f"(number + 1) * size는 1 이상 {PAGE_LIMIT} 이하여야 합니다.")
    _check_enums(filters)
    return Query(number=number, size=size, filter=filters)


def _check_enums(filters: dict[str, Any]) -> None:
    lists = (("status", STATUSES), ("methods", METHOD_TYPES))
    for name, allowed in lists:
        value = filters.get(name)
        if value is not None and (not isinstance(value, list) or any(item not in allowed for item in value)):
            raise _invalid(f"filter.{name}가 올바르지 않습니다.")
    for name, allowed in (("timestampType", TIMESTAMPS), ("sortBy", SORTS), ("sortOrder", ("ASC", "DESC"))):
        if filters.get(name) is not None and filters[name] not in allowed:
            raise _invalid(f"filter.{name}가 올바르지 않습니다.")
    for name in ("from", "until"):
        if filters.get(name) is not None and _moment(filters[name]) is None:
            raise _invalid(f"filter.{name}는 RFC 3339 시각이어야 합니다.")
    searches = filters.get("textSearch")
    if searches is not None and (
        not isinstance(searches, list)
        or any(not isinstance(s, dict) or not isinstance(s.get("value"), str) or not isinstance(s.get("field"), str) for s in searches)
    ):
        raise _invalid("filter.textSearch가 올바르지 않습니다.")


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = parse_datetime(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _lookup(state: dict[str, Any], dotted: str) -> Any:
    value: Any = state
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _text_matches(state: dict[str, Any], search: dict[str, Any]) -> bool:
    field, wanted = search["field"], search["value"]
    paths = [p for ps in TEXT_FIELDS.values() for p in ps] if field == "ALL" else TEXT_FIELDS.get(field, ())
    # A field the sandbox does not fill (card numbers, PG ids ...) matches nothing.
    return any(wanted in str(_lookup(state, path) or "") for path in paths)


def matches(state: dict[str, Any], query: Query, stores: Iterable[str], now: datetime) -> bool:
    """Whether the Payment ``state`` passes every filter of ``query`` (``stores``: what the caller may see)."""
    f = query.filter
    if state.get("storeId") not in stores:
        return False
    if f.get("status") and state.get("status") not in f["status"]:
        return False
    method = (state.get("method") or {}).get("type")
    if f.get("methods") and method not in {METHOD_TYPES[m] for m in f["methods"]}:
        return False
    if f.get("isTest") is not None and ((state.get("channel") or {}).get("type") == "TEST") != bool(f["isTest"]):
        return False
    if f.get("currency") and state.get("currency") != str(f["currency"]).removeprefix("CURRENCY_"):
        return False
    until = _moment(f.get("until")) or now
    since = _moment(f.get("from")) or until - DEFAULT_RANGE
    moment = _moment(state.get(TIMESTAMPS[f.get("timestampType") or "CREATED_AT"]))
    if moment is None or not since <= moment <= until:
        return False
    return all(_text_matches(state, search) for search in f.get("textSearch") or ())


def page(states: list[dict[str, Any]], query: Query) -> dict[str, Any]:
    """``GetPaymentsResponse`` of the matching ``states``: sorted, then the requested page."""
    field = SORTS[query.filter.get("sortBy") or "REQUESTED_AT"]
    ordered = sorted(states, key=lambda state: _moment(state.get(field)), reverse=(query.filter.get("sortOrder") or "DESC") == "DESC")
    items = ordered[query.number * query.size : (query.number + 1) * query.size]
    return {"items": items, "page": {"number": query.number, "size": query.size, "totalCount": len(items)}}
