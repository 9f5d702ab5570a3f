"""PortOne (ex-iamport), emulated: the V1 REST API with ``iamport.js``, and the V2 API with its browser SDK.

Two emulators share the settings section ``PGPAY_SANDBOX["PORTONE"]``:

:class:`PortOneSandbox` (``sandbox/portone/``), PortOne V1 as ``https://api.iamport.kr``
and ``https://cdn.iamport.kr/v1/iamport.js`` (contract: ``shared/gateways/portone.md``
and PortOne's V1 OpenAPI file):

- ``POST /users/getToken`` (JSON or form): the same token until it expires,
  its expiry pushed 5 minutes on when less than a minute is left, a new one
  after; ``Authorization: <token>``, ``Bearer <token>`` or ``X-ImpTokenHeader``;
  401 with the ``{code, message, response}`` envelope otherwise;
- ``POST``/``PUT /payments/prepare``, ``GET /payments/prepare/{merchant_uid}``:
  the amount registered before the window opens; ``IMP.request_pay`` with
  another amount is blocked;
- payments by ``imp_uid`` with a ``merchant_uid`` index allowing several
  attempts: ``GET /payments/{imp_uid}``, ``GET /payments/find/{merchant_uid}[/{status}]``
  (latest ``started_at``), ``GET /payments/findAll/{merchant_uid}[/{status}]``;
  test-channel payments (``sandbox: true``) only with ``?include_sandbox=true``;
- ``POST /payments/cancel`` with ``checksum``; business errors as HTTP 200
  with ``code != 0``;
- the payment window (an iframe layer calling back ``IMP.request_pay``'s
  callback on a PC, a full-page redirect to ``m_redirect_url`` on a phone);
- webhooks ``{imp_uid, merchant_uid, status[, cancellation_id]}``, unsigned,
  to ``notice_url`` or ``WEBHOOK_URL``: on payment, virtual account issued,
  deposit and console cancel (API cancels only with ``enable_webhook``).

:class:`PortOneV2Sandbox` (``sandbox/portone-v2/``), PortOne V2 as
``https://api.portone.io`` and ``https://cdn.portone.io/v2/browser-sdk.js``:
``Authorization: PortOne <secret>``, ``POST /payments/{id}/pre-register``,
``GET /payments/{id}``, ``POST /payments/{id}/cancel`` with
``currentCancellableAmount``, typed ``{type, message}`` errors,
``PortOne.requestPayment`` and webhooks signed with Standard Webhooks.

Where PortOne's documentation is silent the sandbox picks the likeliest
answer and says so in a comment (search "unconfirmed").
"""

from __future__ import annotations

from typing import Any

from ..base import ApiError
from .v1 import PortOneSandbox
from .v2 import PortOneV2Sandbox

__all__ = [
    "ApiError",
    "PortOneSandbox",
    "PortOneV2Sandbox",
    "allow_other_amount",
    "cancel_in_console",
    "deposit",
    "pay",
    "payment_state",
    "revoke_tokens",
    "token_requests",
    "v2_allow_other_amount",
    "v2_cancel_in_console",
    "v2_deposit",
    "v2_pay",
    "v2_payment_state",
]


# --- the Python API (what tests call) -------------------------------------------------------------


def _v1() -> PortOneSandbox:
    from ..registry import emulator

    return emulator("portone")


def _v2() -> PortOneV2Sandbox:
    from ..registry import emulator

    return emulator("portone-v2")


def pay(merchant_uid: str, amount: Any, **kwargs) -> dict[str, Any]:
    """A buyer goes through ``IMP.request_pay``'s window (no browser): what the callback gets (``imp_uid`` …)."""
    return _v1().act_pay(merchant_uid, amount, **kwargs)


def deposit(imp_uid: str) -> dict[str, Any]:
    """The money for a V1 virtual account arrives."""
    return _v1().act_deposit(imp_uid)


def cancel_in_console(imp_uid: str, amount: Any = None, reason: str = "관리자 콘솔 취소") -> dict[str, Any]:
    """A cancel made in PortOne's console (full, or ``amount``)."""
    return _v1().act_cancel(imp_uid, amount, reason)


def payment_state(imp_uid: str) -> dict[str, Any]:
    """The V1 Payment object of ``imp_uid``."""
    return _v1().act_payment(imp_uid)


def revoke_tokens() -> int:
    """Every issued V1 access token stops working (the next call with one is a 401)."""
    return _v1().act_revoke_tokens()


def allow_other_amount(merchant_uid: str) -> dict[str, Any]:
    """The next window of ``merchant_uid`` opens with whatever amount the browser sends (seed 003's tampering)."""
    return _v1().act_allow_other_amount(merchant_uid)


def token_requests() -> int:
    """How many V1 ``users/getToken`` calls the sandbox answered with a token."""
    return _v1().token_requests()


def v2_pay(payment_id: str, total_amount: int, **kwargs) -> dict[str, Any]:
    """A buyer goes through ``PortOne.requestPayment``'s window (no browser)."""
    return _v2().act_pay(payment_id, total_amount, **kwargs)


def v2_deposit(payment_id: str) -> dict[str, Any]:
    """The money for a V2 virtual account arrives."""
    return _v2().act_deposit(payment_id)


def v2_cancel_in_console(payment_id: str, amount: Any = None, reason: str = "관리자 콘솔 취소") -> dict[str, Any]:
    """A cancel of a V2 payment made in PortOne's console."""
    return _v2().act_cancel(payment_id, amount, reason)


def v2_payment_state(payment_id: str) -> dict[str, Any]:
    """The V2 Payment object of ``payment_id``."""
    return _v2().act_payment(payment_id)


def v2_allow_other_amount(payment_id: str) -> dict[str, Any]:
    """The next V2 window of ``payment_id`` opens with whatever amount the browser sends."""
    return _v2().act_allow_other_amount(payment_id)
