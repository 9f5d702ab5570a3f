"""The checkout start form's token: one page load, one order, whatever is posted again.

:class:`~django_pgpay.views.CheckoutMixin` reuses the buyer's READY order for
the same thing, so a double click or a second tab holds one place. Once that
order is paid it is no longer READY: the same form posted again (the back
button after paying, a stale tab, "Pay now" on an old bookings page) used to
start a second order, reserve a second place and open a payment window for it,
and a buyer who thought the first payment had failed paid twice.

Each rendering of the start form carries a token (``{% pgpay_checkout_token %}``
renders the hidden field, as ``{% csrf_token %}`` does). The order it starts,
or the READY order it comes back to, records the token in its ``pg_data``
(:data:`PG_DATA_KEY`). A form whose token names an order that is paid (or
waiting for its virtual account's deposit) starts nothing: the buyer is shown
that order. A form without a token (a template that does not render it) works
as before. A freshly loaded page has a new token, so a buyer who means to buy
the same thing again can.
"""

from __future__ import annotations

import re
import secrets

#: The POST field of the token (``{% pgpay_checkout_token %}`` renders it).
FIELD = "pgpay_form"
#: Key of the order's ``pg_data`` that lists the tokens of the forms that led to it.
PG_DATA_KEY = "pgpay_forms"
#: Tokens kept per order (a buyer who reloads the page and posts again many times: the newest).
KEPT = 20

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_token() -> str:
    """A token for one rendering of a start form."""
    return secrets.token_urlsafe(18)


def clean(value) -> str | None:
    """The posted token when it is one (letters, digits, ``-`` and ``_``, 16 to 64), else None."""
    return value if isinstance(value, str) and _TOKEN_RE.match(value) else None


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
    """The token a form that continues ``order`` posts (its first one), or a new one."""
    known = tokens(order)
    return known[0] if known else new_token()
