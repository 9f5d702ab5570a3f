"""Stripe's lists and searches: pages of objects, the filters each list takes, and the search query language.

A list (``GET /v1/checkout/sessions``, ``/v1/refunds``, ``/v1/events``, a
Session's ``line_items``) is newest first, ``limit`` 1–100 (10 by default),
paged with ``starting_after`` / ``ending_before``. It takes only the
parameters Stripe's API lists for it (:data:`~.wire.LIST_PARAMS`): any other
is a 400 ``parameter_unknown``, as at Stripe. ``created`` is a Unix time or a
range ``created[gt|gte|lt|lte]``.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..base import Answer, ApiContext
from ..models import SandboxPayment
from . import wire

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gt": int.__gt__,
    "gte": int.__ge__,
    "lt": int.__lt__,
    "lte": int.__le__,
}
_CLAUSE = re.compile(
    r"""^(-?)(metadata\[(['"])(?P<key>[^'"]{1,40})\3\]|[a-z_]+)\s*(?P<op>:|>=|<=|>|<)\s*(?P<value>'[^']*'|"[^"]*"|-?\d+)$"""
)
#: Fields a PaymentIntent search may name (besides ``metadata['…']``).
SEARCH_FIELDS = frozenset({"status", "currency", "amount", "created", "customer"})
SESSION_STATUSES = ("complete", "expired", "open")


def limit_of(p: dict[str, Any]) -> int:
    if p.get("limit") in (None, ""):
        return 10
    limit = wire.integer(p["limit"], "limit", minimum=1)
    if limit > 100:
        raise wire.invalid("limit", "This value must be less than or equal to 100.")
    return limit


def created_between(objects: list[dict[str, Any]], created: Any) -> list[dict[str, Any]]:
    """``created=T`` (exactly) or ``created[gt|gte|lt|lte]=T`` (a range; several bounds combine)."""
    if created in (None, ""):
        return objects
    if not isinstance(created, dict):
        bound = wire.integer(created, "created")
        return [o for o in objects if int(o["created"]) == bound]
    wire.unknown_params(created, wire.RANGE_OPERATORS, "created")
    for op, value in created.items():
        bound = wire.integer(value, f"created[{op}]")
        objects = [o for o in objects if _COMPARE[op](int(o["created"]), bound)]
    return objects


def equal_to(objects: list[dict[str, Any]], p: dict[str, Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Keep the objects whose field equals the parameter of the same name, for each of ``names`` given."""
    for name in names:
        if p.get(name) not in (None, ""):
            wanted = wire.string_value(p[name], name)
            objects = [o for o in objects if o.get(name) == wanted]
    return objects


def buyer_email(objects: list[dict[str, Any]], details: Any) -> list[dict[str, Any]]:
    """``customer_details[email]``: the Sessions whose buyer gave that email (compared as Stripe does, case-insensitively)."""
    if details in (None, ""):
        return objects
    if not isinstance(details, dict):
        raise wire.invalid("customer_details", "Invalid hash: customer_details")
    wire.unknown_params(details, frozenset({"email"}), "customer_details")
    if details.get("email") in (None, ""):
        raise wire.missing("customer_details[email]")
    email = wire.string_value(details["email"], "customer_details[email]", max_length=800).lower()
    return [o for o in objects if str((o.get("customer_details") or {}).get("email") or "").lower() == email]


class Lists:
    """The list and search endpoints; mixed into the emulator."""

    def query(self, ctx: ApiContext, allowed: frozenset[str]) -> dict[str, Any]:
        """The GET's query, refused with ``parameter_unknown`` for a name the endpoint does not take."""
        p = self.params(ctx)
        wire.unknown_params(p, allowed)
        return p

    def _paginate(self, objects: list[dict[str, Any]], p: dict[str, Any], url: str) -> dict[str, Any]:
        limit = limit_of(p)
        ids = [o.get("id") for o in objects]
        if p.get("starting_after") not in (None, ""):
            if p["starting_after"] not in ids:
                raise wire.invalid("starting_after", f"Invalid starting_after id: {p['starting_after']}")
            objects = objects[ids.index(p["starting_after"]) + 1 :]
        elif p.get("ending_before") not in (None, ""):
            if p["ending_before"] not in ids:
                raise wire.invalid("ending_before", f"Invalid ending_before id: {p['ending_before']}")
            objects = objects[: ids.index(p["ending_before"])][-limit:]
        page = objects[:limit]
        return {"object": "list", "data": [copy.deepcopy(o) for o in page], "has_more": len(objects) > limit, "url": url}

    def _list_answer(self, objects: list[dict[str, Any]], p: dict[str, Any], url: str) -> Answer:
        return wire.answer(200, self.expand(self._paginate(created_between(objects, p.get("created")), p, url), wire.expand_param(p)))

    def api_list_sessions(self, ctx: ApiContext, fault=None) -> Answer:
        p = self.query(ctx, wire.LIST_PARAMS["checkout.session"])
        if p.get("status") not in (None, "") and p["status"] not in SESSION_STATUSES:
            raise wire.invalid("status", "Invalid status: must be one of complete, expired, or open")
        objects = equal_to(self._objects("cs_", 1000), p, ("status", "payment_intent", "customer", "payment_link", "subscription"))
        objects = equal_to(objects, p, ("customer_account",))
        return self._list_answer(buyer_email(objects, p.get("customer_details")), p, "/v1/checkout/sessions")

    def api_list_refunds(self, ctx: ApiContext, fault=None) -> Answer:
        p = self.query(ctx, wire.LIST_PARAMS["refund"])
        return self._list_answer(equal_to(self._objects("re_"), p, ("payment_intent", "charge")), p, "/v1/refunds")

    def api_list_events(self, ctx: ApiContext, fault=None) -> Answer:
        p = self.query(ctx, wire.LIST_PARAMS["event"])
        if p.get("delivery_success") not in (None, ""):
            raise wire.not_emulated("delivery_success", "filtering events by delivery_success")
        objects = self._objects("evt_")
        types = p.get("types") or ([p["type"]] if p.get("type") not in (None, "") else [])
        if types:
            patterns = [re.compile("^" + re.escape(t).replace(r"\*", "[^.]+") + "$") for t in types if isinstance(t, str)]
            objects = [o for o in objects if any(pattern.match(o["type"]) for pattern in patterns)]
        return self._list_answer(objects, p, "/v1/events")

    def _line_items_list(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        row = self._row(session_id)
        items = copy.deepcopy(row.session.get("line_items") or []) if row else []
        return self._paginate(items, params, f"/v1/checkout/sessions/{session_id}/line_items")

    def api_session_line_items(self, ctx: ApiContext, fault=None, session_id: str = "") -> Answer:
        p = self.query(ctx, wire.LIST_PARAMS["item"])
        if self._row(session_id) is None or not session_id.startswith("cs_"):
            raise wire.no_such("checkout.session", session_id, "session")
        return wire.answer(200, self.expand(self._line_items_list(session_id, p), wire.expand_param(p)))

    def api_search_intents(self, ctx: ApiContext, fault=None) -> Answer:
        """``GET /v1/payment_intents/search?query=…``: ``metadata['k']:'v'``, ``status:'…'``, ``currency:'…'``,
        ``amount``/``created`` comparisons, joined by ``AND`` or ``OR``, ``-`` to negate."""
        p = self.query(ctx, wire.SEARCH_PARAMS)
        if p.get("query") in (None, ""):
            raise wire.missing("query")
        found = self._search(ctx, *parse_query(p["query"]))
        limit, offset = limit_of(p), 0
        if p.get("page") not in (None, ""):
            try:
                offset = int(base64.urlsafe_b64decode(str(p["page"]).encode()).decode())
            except ValueError as exc:
                raise wire.invalid("page", "Invalid page token.") from exc
        more = len(found) > offset + limit
        result = {
            "object": "search_result",
            "data": found[offset : offset + limit],
            "has_more": more,
            "next_page": base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None,
            "url": "/v1/payment_intents/search",
        }
        return wire.answer(200, self.expand(result, wire.expand_param(p)))

    def _search(self, ctx: ApiContext, clauses: list[tuple[str, str, str, bool]], joiner: str) -> list[dict[str, Any]]:
        """The PaymentIntents a search finds; new ones show after ``SEARCH_LAG`` seconds, as Stripe's index lags."""
        lag = float(self.config().get("SEARCH_LAG") or 0)
        newest = wire.ts(ctx.now - timedelta(seconds=lag)) if lag else None
        rows = SandboxPayment.objects.filter(pg=self.name, key__startswith="pi_").order_by("-id")
        wanted_order = next(
            (value for field, op, value, negated in clauses if field == "metadata.order_id" and op == ":" and not negated), None
        )
        if wanted_order is not None and joiner == "AND":
            rows = rows.filter(order_id=wanted_order[:100])
        found = []
        for row in rows[:2000]:
            intent = row.state
            if newest is not None and int(intent.get("created") or 0) > newest:
                continue
            results = [matches(intent, clause) for clause in clauses]
            if all(results) if joiner == "AND" else any(results):
                found.append(copy.deepcopy(intent))
        return found


def parse_query(query: Any) -> tuple[list[tuple[str, str, str, bool]], str]:
    """Stripe's search query language, the part a shop needs: equality and numeric comparisons, AND or OR."""
    if not isinstance(query, str) or len(query) > 10000:
        raise wire.invalid("query", "Invalid query.")
    has_and, has_or = " AND " in query, " OR " in query
    if has_and and has_or:
        raise wire.invalid("query", "Search queries cannot mix AND and OR.")
    joiner = "OR" if has_or else "AND"
    clauses = []
    for text in query.split(f" {joiner} "):
        match = _CLAUSE.match(text.strip())
        if match is None:
            raise wire.invalid("query", f"Invalid query: could not parse '{text.strip()[:100]}'.")
        field = f"metadata.{match.group('key')}" if match.group("key") else match.group(2)
        if field not in SEARCH_FIELDS and not field.startswith("metadata."):
            raise wire.invalid("query", f"Field '{field}' is an unsupported search field for resource payment_intents.")
        value = match.group("value")
        value = value[1:-1] if value[0] in "'\"" else value
        clauses.append((field, match.group("op"), value, match.group(1) == "-"))
    return clauses, joiner


def matches(intent: dict[str, Any], clause: tuple[str, str, str, bool]) -> bool:
    field, op, value, negated = clause
    if field.startswith("metadata."):
        actual: Any = (intent.get("metadata") or {}).get(field.split(".", 1)[1])
    else:
        actual = intent.get(field)
    if op == ":":
        result = str(actual) == value if actual is not None else False
    else:
        try:
            left, right = int(actual), int(value)
        except (TypeError, ValueError):
            return False
        result = {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]
    return not result if negated else result
