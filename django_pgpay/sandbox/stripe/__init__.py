"""Stripe, emulated: Checkout Sessions, PaymentIntents, Charges, Refunds, Events and the hosted payment page.

Mounted under ``sandbox/stripe/`` (see :mod:`django_pgpay.sandbox.urls`), so a
Stripe client works unchanged with its base URL set to
``http://HOST/sandbox/stripe``: our gateway with ``API_BASE``, the official
library with ``stripe.StripeClient(key, base_addresses={"api": url})``. The
contract followed is ``shared/gateways/stripe.md`` (the official SDK and
docs.stripe.com):

- ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions[/{id}[/line_items]]``,
  ``POST /v1/checkout/sessions/{id}/expire``; ``GET /v1/payment_intents/{id}``,
  ``GET /v1/payment_intents/search``; ``GET /v1/charges/{id}``,
  ``GET /v1/payment_methods/{id}``; ``POST /v1/refunds``,
  ``GET /v1/refunds[/{id}]``; ``GET /v1/events[/{id}]``; with ``expand``;
  lists filtered by ``created[gt|gte|lt|lte]`` and the filters Stripe's API
  lists for each; an unknown parameter (GET or POST) is ``parameter_unknown``;
- Bearer (or Basic) auth with a secret key; form-encoded bodies with bracketed
  keys; Stripe's error object and HTTP statuses; ``Request-Id``;
- objects shaped as the API version announced (:data:`API_VERSION`);
  totals below Stripe's minimum charge are ``amount_too_small``;
- ``Idempotency-Key`` on every POST: the first answer is replayed with
  ``Idempotent-Replayed: true``, the same key with other parameters is a 400
  ``idempotency_error``, a key still in flight a 409 ``idempotency_key_in_use``,
  refusals of bad parameters are not kept, keys live 24 hours;
- the hosted page at ``session.url`` with Stripe's test cards, a 3-D Secure
  step and a delayed payment method; Session expiry on the sandbox clock;
- events with a real ``Stripe-Signature`` (signed anew at each delivery
  attempt), delivered through the sandbox's outbox; any 2xx is an ack.

The package has one module per noun: :mod:`.wire` (forms, parameters, errors),
:mod:`.objects` (shapes and rows), :mod:`.sessions`, :mod:`.intents`,
:mod:`.refunds`, :mod:`.lists`, :mod:`.events`, :mod:`.pages`, :mod:`.actions`,
and :mod:`.emulator` which puts :class:`StripeSandbox` together. Where
stripe.md marks a fact "unconfirmed" the sandbox picks the likeliest answer
and says so in a comment (search "unconfirmed").
"""

from ..base import ApiError
from .actions import expire, pay, pay_delayed, payment_intent_state, refund_in_dashboard, session_state, settle
from .emulator import API_VERSION, ERRORS, StripeSandbox
from .events import DEFAULT_EVENTS, events
from .intents import TEST_CARDS, PageResult
from .wire import StripeError

__all__ = [
    "API_VERSION",
    "DEFAULT_EVENTS",
    "ERRORS",
    "TEST_CARDS",
    "ApiError",
    "PageResult",
    "StripeError",
    "StripeSandbox",
    "events",
    "expire",
    "pay",
    "pay_delayed",
    "payment_intent_state",
    "refund_in_dashboard",
    "session_state",
    "settle",
]
