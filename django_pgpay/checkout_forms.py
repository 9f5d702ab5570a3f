"""The checkout start form's token: a form posted again after its order was paid starts nothing.

:class:`~django_pgpay.views.CheckoutMixin` reuses the buyer's READY order for
the same thing, so a double click or a second tab holds one place. Once that
order is paid it is no longer READY: the same form posted again (the back
button after paying, a stale tab, "Pay now" on an old bookings page) used to
start a second order, reserve a second place and open a payment window for it,
and a buyer who thought the first payment had failed paid twice.

Each rendering of the start form carries a token (``{% pgpay_checkout_token %}``
renders the hidden field, as ``{% csrf_token %}`` does) that says when the page
was made. The order a form starts, or the READY order it comes back to, records
the token in its ``pg_data`` (:data:`PG_DATA_KEY`). A form is **stale**, and
starts nothing, when the buyer has a paid (or awaiting deposit) order for the
same thing that it led to, or that was paid after the form's page was made
(a tab left open while the buyer paid in another; the back button showing the
page another tab made before the payment). The buyer is shown that order. Any
other form of a buyer who has paid for the same thing already (a page loaded
anew, a form without a token) is asked first ("You have paid for this
already. Pay for another one?",
:meth:`~django_pgpay.views.CheckoutMixin.paid_before`), whose page posts the
same form again with ``pgpay_another=1`` (:data:`ANOTHER_FIELD`).

A buyer without an account (``allow_anonymous``) is known by the browser's
session, which lists the orders it started (:data:`SESSION_KEY`), and by the
token, which the order records: the same rules apply to those orders.

The start form posts to its page's URL with ``pgpay_checkout=1`` added
(``checkout_action`` in the context): a POST makes browsers drop their cached
copy of the URL it went to, and the back button would then fetch the page anew
instead of showing the one the buyer posted from.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timedelta, timezone

from django.db.models import Q
from django.utils.crypto import salted_hmac

#: The POST field of the token (``{% pgpay_checkout_token %}`` renders it).
FIELD = "pgpay_form"
#: Key of the order's ``pg_data`` that lists the tokens of the forms that led to it.
PG_DATA_KEY = "pgpay_forms"
#: Tokens kept per order (a buyer who reloads the page and posts again many times: the newest).
KEPT = 20
#: The query parameter of the start form's action (see the module's last paragraph).
ACTION_PARAM = "pgpay_checkout"
#: The session key listing the numbers of the orders an anonymous buyer started in this browser.
SESSION_KEY = "pgpay_orders"
#: The POST field of a buyer who, told they have paid for the same thing already, wants another one.
ANOTHER_FIELD = "pgpay_another"

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMED_RE = re.compile(r"t([0-9a-f]{10,12})_[0-9a-f]{24}")
_ORDER_RE = re.compile(r"o[0-9a-f]{32}")
#: A form whose page was made less than this after its order was paid counts as made before (the
#: clocks of the shop's servers may differ a little; the buyer who meant it reloads the page).
MARGIN = timedelta(seconds=1)


def new_token(now: float | None = None) -> str:
    """A token for one rendering of a start form, saying when it was made (``t<hex milliseconds>_<random>``)."""
    return f"t{int((time.time() if now is None else now) * 1000):x}_{secrets.token_hex(12)}"


def order_token(order_number: str) -> str:
    """The token of a form that continues the order ``order_number`` (made by the server, not guessable)."""
    return "o" + salted_hmac("django_pgpay.checkout_forms", str(order_number), algorithm="sha256").hexdigest()[:32]


def clean(value) -> str | None:
    """The posted token when it is one (letters, digits, ``-`` and ``_``, 16 to 64), else None."""
    return value if isinstance(value, str) and _TOKEN_RE.fullmatch(value) else None


def made_at(token: str) -> datetime | None:
    """When the page of ``token``'s form was made, for a token of :func:`new_token`; else None.

    A made-up token of that shape may name a moment no ``datetime`` holds
    (``tffffffffffff_…``, the year 10889): None, as for any other token.
    """
    found = _TIMED_RE.fullmatch(token)
    if not found:
        return None
    try:
        return datetime.fromtimestamp(int(found.group(1), 16) / 1000, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def is_ours(token: str) -> bool:
    """Whether ``token`` has the shape of one the library makes (:func:`new_token`, :func:`order_token`).

    Only those find a buyer's order by the token alone (a guest's): a string
    of the visitor's choosing could otherwise match text the PGs leave in an
    order's ``pg_data``.
    """
    return bool(_TIMED_RE.fullmatch(token) or _ORDER_RE.fullmatch(token))


def tokens(order) -> list[str]:
    """The tokens recorded on ``order``."""
    recorded = (order.pg_data or {}).get(PG_DATA_KEY) if isinstance(order.pg_data, dict) else None
    return [t for t in recorded if isinstance(t, str)] if isinstance(recorded, list) else []


def record(order, token: str) -> bool:
    """Add ``token`` to ``order.pg_data`` (not saved); False when it was there already."""
    known = tokens(order)
    if token in known:
        return False
    order.pg_data = {**(order.pg_data or {}), PG_DATA_KEY: [*known, token][-KEPT:]}
    return True


def token_for(order) -> str:
    """The token a form that continues ``order`` posts: its own, whether or not a form ever recorded one."""
    return order_token(order.order_number)


def is_stale(token: str, order) -> bool:
    """Did the form of ``token`` come before ``order`` was paid (``order`` being a paid one of the same thing)?

    It led to it (recorded, or the order's own token), or its page was made
    before the order was paid (``paid_at``; for an order awaiting its deposit,
    its last change), give or take :data:`MARGIN`: a tab left open while the
    buyer paid in another, or the page another tab made before the payment
    that the back button shows. Its page then never said the order was paid.
    """
    if token in tokens(order) or token == order_token(order.order_number):
        return True
    made = made_at(token)
    paid = order.paid_at or order.modified or order.created
    return made is not None and paid is not None and paid > made - MARGIN


def orders_recording(queryset, token: str | None) -> list:
    """The orders of ``queryset`` that recorded ``token`` (see :func:`record`), newest first; none for a token not of the library's making.

    A text match on the JSON finds the candidates on every database; the
    order's recorded list decides. An order records the token when its form is
    posted, after the form's page was made: a timed token looks only at orders
    changed since. For a form that makes an order without
    :class:`~django_pgpay.views.CheckoutMixin` (a cart's "Place order"): the
    same form posted again finds the order it made, under a lock of the buyer.
    """
    if token is None or not is_ours(token):
        return []
    found = Q(pg_data__icontains=f'"{token}"')
    made = made_at(token)
    if made is not None:
        found &= Q(modified__gte=made - MARGIN)
    return [order for order in queryset.filter(found).order_by("-pk")[:KEPT] if token in tokens(order)]


def session_orders(request) -> list[str]:
    """Numbers of the orders started in this browser's session by a buyer without an account."""
    session = getattr(request, "session", None)
    known = session.get(SESSION_KEY) if session is not None else None
    return [n for n in known if isinstance(n, str)] if isinstance(known, list) else []


def remember_in_session(request, order) -> None:
    """Note in the session that this browser started ``order`` (the newest :data:`KEPT`); no session, nothing."""
    if getattr(request, "session", None) is None:
        return
    known = [n for n in session_orders(request) if n != order.order_number]
    request.session[SESSION_KEY] = [*known, order.order_number][-KEPT:]


def action(request) -> str:
    """The start form's action: the page's own URL (its query kept) with ``pgpay_checkout=1``."""
    path = request.get_full_path()
    if f"{ACTION_PARAM}=1" in path:
        return path
    return f"{path}{'&' if '?' in path else '?'}{ACTION_PARAM}=1"
