"""The exception tree of django-pgpay.

Every error carries enough context to act on it (which gateway, which PG code,
which order) and a ``user_message`` that is safe to show to a buyer. None of
them ever holds a secret key: gateways redact credentials before a reply is
attached (see :func:`redact`).

``http_status`` says how a view should answer when the error reaches it: bad
input is a 4xx, a PG that cannot be reached is a 502/503, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from .status import OrderStatus

#: Keys whose values are replaced by ``"***"`` wherever a PG reply or request is
#: kept (ledger rows, errors, logs). Compared case-insensitively.
SECRET_KEYS = frozenset(
    {
        "secret",
        "secret_key",
        "secretkey",
        "api_key",
        "apikey",
        "apisecret",
        "api_secret",
        "imp_secret",
        "private_key",
        "client_secret",
        "access_token",
        "refresh_token",
        "accesstoken",
        "refreshtoken",
        "authorization",
        "password",
        "card_number",
    }
)


def redact(value: Any) -> Any:
    """Return a copy of a JSON-like value with secret-looking keys masked."""
    if isinstance(value, Mapping):
        return {k: ("***" if str(k).lower() in SECRET_KEYS and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


class PgPayDeprecationWarning(DeprecationWarning):
    """Something a shop wrote still works but has a new spelling (named in the message).

    Our own subclass, as django-anymail does, so a shop can filter ours alone:
    ``warnings.filterwarnings("error", category=PgPayDeprecationWarning)``.
    """


class PgPayError(Exception):
    """Base class of every error raised by django-pgpay."""

    #: HTTP status a view answers with when this error reaches it.
    http_status = 400
    #: Machine-readable code; subclasses and instances refine it.
    code = "PGPAY_ERROR"
    default_message = _("The payment could not be processed.")

    def __init__(self, message: str | None = None, *, code: str | None = None):
        if code is not None:
            self.code = code
        self.message = str(message) if message is not None else str(self.default_message)
        super().__init__(self.message)

    @property
    def user_message(self) -> str:
        """A message that may be shown to a buyer or a shop's staff."""
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ConfigurationError(PgPayError, ImproperlyConfigured):
    """The ``PGPAY`` setting is missing something; the message names the exact key."""

    http_status = 500
    code = "CONFIGURATION"


class UnsupportedFeature(PgPayError):
    """A gateway was asked for something its PG cannot do (see its capability flags)."""

    code = "UNSUPPORTED"

    def __init__(self, gateway: str, feature: str):
        self.gateway = gateway
        self.feature = feature
        super().__init__(_("%(gateway)s does not support %(feature)s.") % {"gateway": gateway, "feature": feature})


# --- errors of the operations (raised before or instead of a PG call) ---------


class OperationRefused(PgPayError):
    """The operation was refused before anything was sent to the PG.

    Nothing was changed. ``code`` tells why (``NOT_CONFIRMABLE``,
    ``NOT_CANCELABLE``, ``INVALID_AMOUNT``, ``EXCEEDS_BALANCE``, ``SOLD_OUT`` ...).
    """

    http_status = 409
    code = "REFUSED"

    def __init__(self, message: str | None = None, *, code: str | None = None, order=None):
        self.order = order
        super().__init__(message, code=code)


class NotCancelable(OperationRefused):
    """The order is not in a state that can be cancelled, or the amount is not allowed.

    Raised with the order and no message, it says why in the buyer's words
    (:meth:`message_for`): already cancelled in full (another tab, another
    click, the staff came first), or never paid.
    """

    code = "NOT_CANCELABLE"
    default_message = _("This order cannot be cancelled.")

    def __init__(self, message: str | None = None, *, code: str | None = None, order=None):
        if message is None and order is not None:
            message = self.message_for(order)
        super().__init__(message, code=code, order=order)

    @staticmethod
    def message_for(order) -> str | None:
        """Why ``order``'s status leaves nothing to cancel (None: :attr:`default_message`)."""
        status = getattr(order, "status", None)
        if status == OrderStatus.CANCELED:
            return _("This order was already cancelled in full. Nothing more was refunded.")
        if status in (OrderStatus.READY, OrderStatus.FAILED, OrderStatus.EXPIRED):
            return _("This order was not paid, so there is nothing to refund.")
        return None


class SoldOut(OperationRefused):
    """The order's ``reserve()`` hook found no stock left."""

    code = "SOLD_OUT"
    default_message = _("Sold out.")


class OperationInProgress(PgPayError):
    """The same operation is already running elsewhere; its outcome is not known yet."""

    http_status = 409
    code = "IN_PROGRESS"
    default_message = _("This payment is being processed. Please check again in a moment.")


class InvalidTransition(PgPayError):
    """A status change the transition table does not allow. Nothing was changed."""

    http_status = 409
    code = "INVALID_TRANSITION"

    def __init__(self, order_number: str, source: str, target: str):
        self.order_number = order_number
        self.source = source
        self.target = target
        super().__init__(
            _("Order %(order)s cannot go from %(source)s to %(target)s.") % {"order": order_number, "source": source, "target": target}
        )


class AmountMismatch(PgPayError):
    """An amount or currency differs from the order's.

    Raised before any PG call when the browser's return carries a different
    amount (tampering), and by the post_save validation when the PG reports a
    confirmed amount that differs from the order's (then the operation
    records the failure and cancels the payment at the PG).
    """

    code = "AMOUNT_MISMATCH"

    def __init__(self, *, expected, actual, expected_currency: str = "", actual_currency: str = "", order_number: str = ""):
        self.expected = expected
        self.actual = actual
        self.expected_currency = expected_currency
        self.actual_currency = actual_currency
        self.order_number = order_number
        super().__init__(
            _("The payment amount %(actual)s %(actual_currency)s does not match the order amount %(expected)s %(expected_currency)s.")
            % {
                "actual": actual,
                "actual_currency": actual_currency,
                "expected": expected,
                "expected_currency": expected_currency,
            }
        )


class WebhookVerificationError(PgPayError):
    """A webhook delivery could not be authenticated (bad signature, unknown payment, stale)."""

    code = "WEBHOOK_UNVERIFIED"
    default_message = _("The notification could not be verified.")


# --- errors of the PGs ---------------------------------------------------------


class GatewayError(PgPayError):
    """The PG answered with an error, or did not answer.

    ``gateway`` is the alias (``"toss"``), ``code`` the PG's own error code,
    ``http_status_from_pg`` its HTTP status and ``response`` its reply with
    secrets redacted.
    """

    http_status = 502
    code = "GATEWAY_ERROR"
    #: True when the PG may have acted although we got no usable answer: a
    #: lookup, never a blind retry, must decide what happened.
    outcome_unknown = False

    def __init__(
        self,
        message: str | None = None,
        *,
        gateway: str = "",
        code: str | None = None,
        http_status: int | None = None,
        response: Any = None,
    ):
        self.gateway = gateway
        self.http_status_from_pg = http_status
        self.response = redact(response)
        super().__init__(message, code=code)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(gateway={self.gateway!r}, code={self.code!r}, "
            f"http_status={self.http_status_from_pg!r}, message={self.message!r})"
        )


class PaymentDeclined(GatewayError):
    """The PG refused the payment (card declined, limit, fraud check ...). Definitive."""

    http_status = 402
    code = "DECLINED"
    default_message = _("The payment was declined.")


class InvalidRequest(GatewayError):
    """The PG rejected the request as malformed or not allowed. Definitive; nothing moved."""

    http_status = 400
    code = "INVALID_REQUEST"


class NotFound(GatewayError):
    """The PG does not know this payment."""

    http_status = 404
    code = "NOT_FOUND"
    default_message = _("The payment was not found at the payment provider.")


class AlreadyProcessed(GatewayError):
    """The PG says this payment was already confirmed: look it up, do not fail."""

    http_status = 409
    code = "ALREADY_PROCESSED"


class AlreadyCanceled(GatewayError):
    """The PG says this payment is already cancelled: look it up and apply what it says."""

    http_status = 409
    code = "ALREADY_CANCELED"


class CancelRefused(GatewayError):
    """The PG refused a cancel (amount not cancellable, partial cancel not allowed ...)."""

    http_status = 409
    code = "CANCEL_REFUSED"
    default_message = _("The payment provider refused the cancellation.")


class RefundAccountRequired(CancelRefused):
    """A virtual-account refund needs the buyer's bank account (or the one given was refused).

    The library cannot give such money back by itself: a compensating cancel
    that meets this error is marked *needs attention* (see
    :data:`~django_pgpay.signals.payment_needs_attention`).
    """

    code = "REFUND_ACCOUNT_REQUIRED"
    default_message = _("The refund needs the buyer's bank account.")


class RetryLater(GatewayError):
    """The PG refused this call for now and did nothing: a rate limit, a repeat within its guard time.

    A refusal the PG documents, not an unknown outcome: nothing is pending and
    the same operation may be asked again shortly (Toss
    ``FORBIDDEN_CONSECUTIVE_REQUEST``, Stripe ``rate_limit`` and ``lock_timeout``).
    """

    http_status = 429
    code = "RETRY_LATER"
    default_message = _("The payment provider asked us to try again in a moment. Nothing was changed.")


class AuthenticationFailed(GatewayError):
    """The PG refused our credentials: a configuration problem of the shop."""

    http_status = 502
    code = "UNAUTHORIZED"
    default_message = _("The payment provider refused the shop's credentials.")


class GatewayUnavailable(GatewayError):
    """No usable answer: timeout, connection error, 5xx, 409 in flight or a malformed reply.

    ``sent`` is False only when the request certainly never reached the PG
    (the connection could not be opened); otherwise the outcome is unknown.
    """

    http_status = 503
    code = "UNAVAILABLE"
    default_message = _("The payment provider did not answer. The payment will be checked again shortly.")

    def __init__(self, message: str | None = None, *, sent: bool = True, **kwargs):
        self.sent = sent
        super().__init__(message, **kwargs)

    @property
    def outcome_unknown(self) -> bool:  # type: ignore[override]
        return self.sent
