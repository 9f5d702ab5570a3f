"""The call pipeline every HTTP gateway shares: :class:`HttpGateway`.

One call goes ``call(verb, method, path, ...)`` -> credentials (an access
token from the shared :class:`AccessTokenCache`, renewed once when the PG
refuses it) -> :class:`~django_pgpay.gateways.http.GatewayHttp` (timeouts,
retries only where nothing can move twice) -> is it a failure? -> the one
error mapper -> a JSON object, or an unknown outcome. A PG fills in small hooks
and class-level tables; it never writes the ladder again.

**The error mapper** (:meth:`HttpGateway.error`), for a reply the PG's
:meth:`~HttpGateway.failed` calls a failure:

1. :meth:`~HttpGateway.error_fields` reads the PG's error shape (its code and
   message). No code means the body is not the PG's error (a proxy's page, a
   truncated body): :class:`~django_pgpay.exceptions.GatewayUnavailable`, a
   lookup decides.
2. The PG's ``ERRORS`` table (code -> exception) decides when it lists the code.
3. Else the HTTP status: 5xx is unavailable; then ``STATUS_ERRORS`` (status ->
   exception, or :data:`REFUSED`, "the verb's refusal"); any other 4xx is the
   refusal of what was asked: CancelRefused for a verb that gives money back,
   else InvalidRequest.
4. The verb refines it (:meth:`~HttpGateway.for_verb`): a verb that gives money
   back (``cancel``, ``withdraw``, ``refund``) is refused with
   :class:`~django_pgpay.exceptions.CancelRefused`, never "declined"; a verb that
   does not cancel is never "already cancelled".

:data:`REFUSED` is the verb's refusal: ``confirm`` -> PaymentDeclined, a cancel
verb -> CancelRefused, others -> InvalidRequest. By default 401 and 403 are our
credentials (AuthenticationFailed), 404 NotFound, 408, 409 ("in progress") and
429 GatewayUnavailable (a lookup decides; a PG that documents 429 as "nothing
ran", like Stripe, maps it to RetryLater). Toss documents 403 as its refusals
(declines at confirm, refused cancels), so its table maps 403 to :data:`REFUSED`.

"No blind retry" is structural: nothing here sends a money-moving call twice.
The only repeat is after the PG refused our access token (the call did
nothing); an answer that never came is
:class:`~django_pgpay.exceptions.GatewayUnavailable` with ``outcome_unknown``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core import checks

from ..exceptions import (
    AlreadyCanceled,
    AuthenticationFailed,
    CancelRefused,
    ConfigurationError,
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    UnsupportedFeature,
)
from .base import BaseGateway
from .http import DEFAULT_TIMEOUT, GatewayHttp, HttpReply
from .results import ConfirmRequest, PaymentResult

#: In ``STATUS_ERRORS``: the verb's own refusal (see the module docstring).
REFUSED = "refused"
#: Verbs that give money back: refused with CancelRefused.
CANCEL_VERBS = frozenset({"cancel", "withdraw", "refund"})
#: Seconds before its end at which an access token is replaced (half its life when it lives less than twice this).
TOKEN_REFRESH_MARGIN = 60


@dataclass(frozen=True)
class AccessToken:
    """An access token and the clock time until which it is used."""

    value: str = field(repr=False)
    use_until: float


class AccessTokenCache:
    """One access token per gateway, shared by every thread until shortly before it expires.

    ``fetch`` asks the PG for a token and returns ``(token, seconds it stays
    valid)``. It runs under a lock: threads that need a token at the same time
    wait for one request instead of making one each. :meth:`get` with
    ``stale=`` the token the PG refused replaces that token, once, however many
    threads saw the refusal. ``clock`` is monotonic seconds (tests move it).
    """

    def __init__(
        self, fetch: Callable[[], tuple[str, float]], *, margin: float = TOKEN_REFRESH_MARGIN, clock: Callable[[], float] | None = None
    ):
        self._fetch = fetch
        self._margin = margin
        self._clock = clock or (lambda: time.monotonic())
        self._lock = threading.Lock()
        self._token: AccessToken | None = None

    def __repr__(self) -> str:
        return f"<AccessTokenCache {'empty' if self._token is None else 'holding a token'}>"

    def get(self, *, stale: str | None = None) -> str:
        with self._lock:
            token = self._token
            if token is not None and token.value != stale and self._clock() < token.use_until:
                return token.value
            started = self._clock()
            value, valid_for = self._fetch()
            margin = self._margin if valid_for > 2 * self._margin else valid_for / 2
            self._token = AccessToken(value=value, use_until=started + valid_for - margin)
            return value

    def clear(self) -> None:
        with self._lock:
            self._token = None


def timeout_value(value):
    """``OPTIONS["TIMEOUT"]`` as requests takes it: the default for None, seconds, or a (connect, read) pair.

    Raises ``ValueError`` for anything else (``"30s"``, ``0``, ``-1``, ``nan``,
    ``(5,)``): such a value would fail each call to the PG, after the ledger row
    was written, instead of once at ``manage.py check``.
    """
    if value is None:
        return DEFAULT_TIMEOUT
    pair = isinstance(value, (list, tuple))
    parts = list(value) if pair else [value]
    if pair and len(parts) != 2:
        raise ValueError(f"{value!r} is neither a number of seconds nor a (connect, read) pair of them")
    seconds = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (int, float, Decimal)) or not math.isfinite(part) or part <= 0:
            raise ValueError(f"{value!r}: each timeout is a number of seconds above 0")
        seconds.append(float(part))
    return seconds[0] if len(seconds) == 1 else (seconds[0], seconds[1])


class HttpGateway(BaseGateway):
    """A gateway that talks to its PG over HTTP: the call pipeline and the error mapper.

    A subclass provides :meth:`auth_headers` (or, for a PG with access tokens,
    :meth:`fetch_token` and :attr:`uses_access_token`), its ``ERRORS`` and
    ``STATUS_ERRORS`` tables, and where its error shape differs the hooks
    :meth:`failed`, :meth:`error_fields` and :meth:`unwrap`. The session is built
    on first use from ``API_BASE`` (default :attr:`DEFAULT_API_BASE`) and
    ``TIMEOUT``, and dropped with the token by :meth:`close`.
    """

    #: The PG's API root, used when the ``API_BASE`` option is not set.
    DEFAULT_API_BASE = ""
    #: The PG's browser SDK, used when the ``JS_SDK_URL`` option is not set.
    DEFAULT_JS_SDK_URL = ""
    #: The PG's error code -> the exception it means.
    ERRORS: Mapping[str, type[GatewayError]] = {}
    #: HTTP status -> exception (or :data:`REFUSED`) for codes ``ERRORS`` does not list.
    STATUS_ERRORS: Mapping[int, Any] = {
        401: AuthenticationFailed,
        403: AuthenticationFailed,
        404: NotFound,
        408: GatewayUnavailable,
        409: GatewayUnavailable,
        429: GatewayUnavailable,
    }
    #: Seconds before an access token's end at which it is replaced.
    TOKEN_MARGIN = TOKEN_REFRESH_MARGIN

    def __init__(self, alias: str, options: Mapping[str, Any]):
        super().__init__(alias, options)
        self._http: GatewayHttp | None = None
        self._http_lock = threading.Lock()
        self.tokens = AccessTokenCache(self._fetch_token, margin=self.TOKEN_MARGIN, clock=lambda: self.clock())

    def clock(self) -> float:
        """Monotonic seconds, for the token's lifetime (tests replace it)."""
        return time.monotonic()

    @property
    def http(self) -> GatewayHttp:
        """The gateway's HTTP session, built on first use from ``API_BASE`` and ``TIMEOUT``."""
        with self._http_lock:
            if self._http is None:
                self._http = GatewayHttp(
                    self.alias,
                    str(self.option("API_BASE", self.DEFAULT_API_BASE) or self.DEFAULT_API_BASE),
                    timeout=self._timeout(),
                )
            return self._http

    @property
    def script_url(self) -> str:
        """The browser SDK's URL (``JS_SDK_URL`` or :attr:`DEFAULT_JS_SDK_URL`)."""
        return str(self.option("JS_SDK_URL", self.DEFAULT_JS_SDK_URL) or self.DEFAULT_JS_SDK_URL)

    def close(self) -> None:
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None
        self.tokens.clear()

    def _timeout(self):
        try:
            return timeout_value(self.option("TIMEOUT", None))
        except ValueError as exc:
            raise ConfigurationError(f"{self.where}['TIMEOUT']: {exc}") from None

    def known_options(self) -> set[str] | None:
        known = super().known_options()
        return None if known is None else known | {"API_BASE", "JS_SDK_URL", "TIMEOUT"}

    def check(self, *, debug: bool) -> list[checks.CheckMessage]:
        """The base checks, and ``TIMEOUT``: a number of seconds above 0, or a (connect, read) pair of them."""
        messages = super().check(debug=debug)
        try:
            timeout_value(self._options.get("TIMEOUT"))
        except ValueError as exc:
            messages.append(checks.Error(f"{self.where}['TIMEOUT']: {exc}", id="django_pgpay.E304"))
        return messages

    # --- hooks a PG fills in ------------------------------------------------------

    #: True when calls carry an access token from :meth:`fetch_token` (PortOne V1, Bootpay's legacy keys).
    uses_access_token = False

    def auth_headers(self, verb: str, token: str | None, idempotency_key: str = "") -> dict[str, str]:
        """The headers that prove who we are (and the idempotency key, where the PG takes one as a header)."""
        return {}

    def fetch_token(self) -> tuple[str, float]:
        """Ask the PG for an access token: ``(token, seconds it stays valid)``."""
        raise UnsupportedFeature(self.pg_name, "access tokens")

    def token_refused(self, reply: HttpReply) -> bool:
        """Does ``reply`` say the access token is no longer good (the call did nothing)?"""
        return reply.status == 401

    def failed(self, reply: HttpReply) -> bool:
        """Is ``reply`` a failure? Default: not 2xx."""
        return not reply.ok

    def error_fields(self, reply: HttpReply) -> tuple[str, str]:
        """The PG's error ``(code, message)`` in a failed reply; ``("", "")`` when it is not the PG's error shape."""
        data = reply.data if isinstance(reply.data, dict) else {}
        return str(data.get("code") or ""), str(data.get("message") or "")

    def unwrap(self, data: dict, verb: str) -> Any:
        """What :meth:`call` returns of a successful reply's JSON object (default: all of it)."""
        return data

    # --- the pipeline ------------------------------------------------------------------

    def send(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str = "",
    ) -> HttpReply:
        """One request with our credentials; sent once more only when the PG refused the access token."""
        token = self.tokens.get() if self.uses_access_token else None

        def once(token):
            sent = {**self.auth_headers(verb, token, idempotency_key), **(headers or {})}
            return self.http.request(method, path, json_body=json_body, form=form, params=params, headers=sent)

        reply = once(token)
        if token is not None and self.token_refused(reply):
            reply = once(self.tokens.get(stale=token))
        return reply

    def call(self, verb: str, method: str, path: str, **kwargs) -> Any:
        """Send, check the reply, insist on a JSON object; return :meth:`unwrap` of it or raise what the reply means."""
        reply = self.send(verb, method, path, **kwargs)
        if self.failed(reply):
            raise self.error(reply, verb)
        return self.unwrap(self.json_object(reply, verb), verb)

    def json_object(self, reply: HttpReply, verb: str) -> dict:
        """The reply's JSON object; anything else is an unknown outcome (the one place that decides so)."""
        if not isinstance(reply.data, dict):
            raise GatewayUnavailable(
                f"{self.alias}: {verb} answered {reply.status} without a JSON object",
                gateway=self.alias,
                code="MALFORMED_REPLY",
                http_status=reply.status,
            )
        return reply.data

    def malformed(self, what: str, exc: Exception | None = None, data: Any = None) -> GatewayUnavailable:
        """The error for a reply we cannot read: an unknown outcome, never a guess."""
        detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        return GatewayUnavailable(
            f"{self.alias}: unreadable {what}{detail}",
            gateway=self.alias,
            code="MALFORMED_REPLY",
            response=dict(data) if isinstance(data, Mapping) else None,
        )

    def _fetch_token(self) -> tuple[str, float]:
        try:
            return self.fetch_token()
        except GatewayUnavailable as exc:
            if exc.code == "TOKEN_UNAVAILABLE":
                raise
            # No money call was sent: the caller's outcome is known (nothing happened).
            raise GatewayUnavailable(
                f"{self.alias}: no access token ({exc.code})", gateway=self.alias, code="TOKEN_UNAVAILABLE", sent=False
            ) from exc

    # --- the error mapper ----------------------------------------------------------------

    def error(self, reply: HttpReply, verb: str) -> GatewayError:
        """The exception a failed reply means (see the module docstring)."""
        code, message = self.error_fields(reply)
        cls = self.error_class(reply, code, message, verb) if code else GatewayUnavailable
        cls = self.for_verb(cls, verb)
        return cls(
            message or f"{self.alias}: {verb} failed with HTTP {reply.status}",
            gateway=self.alias,
            code=code or f"HTTP_{reply.status}",
            http_status=reply.status,
            response=self.error_response(reply),
        )

    def error_response(self, reply: HttpReply) -> dict:
        """What an error keeps of the reply (secrets are redacted by the exception)."""
        data = reply.data if isinstance(reply.data, dict) else {}
        return data or {"body": reply.text[:500]}

    def error_class(self, reply: HttpReply, code: str, message: str, verb: str) -> type[GatewayError]:
        """``ERRORS[code]``, else what the HTTP status means."""
        return self.ERRORS.get(code) or self.status_error(reply.status, verb)

    def status_error(self, status: int, verb: str) -> type[GatewayError]:
        """What an HTTP status means for a code the PG's table does not list."""
        if status >= 500:
            return GatewayUnavailable
        found = self.STATUS_ERRORS.get(status)
        if found == REFUSED and verb == "confirm":
            return PaymentDeclined
        if found is None or found == REFUSED:
            return CancelRefused if verb in CANCEL_VERBS else InvalidRequest
        return found

    @staticmethod
    def for_verb(cls: type[GatewayError], verb: str) -> type[GatewayError]:
        """A cancel verb is refused, never declined; only a cancel verb meets "already cancelled"."""
        if verb in CANCEL_VERBS and cls in (PaymentDeclined, GatewayError):
            return CancelRefused
        if verb not in CANCEL_VERBS and cls is AlreadyCanceled:
            return InvalidRequest
        return cls

    # --- defaults for PGs without a confirm call; webhooks ---------------------------------

    def confirm(self, request: ConfirmRequest) -> PaymentResult:
        """Where the PG has no confirm call (``requires_confirm_call = False``): the lookup is the confirmation.

        The payment is fetched (:meth:`confirm_lookup`); one that names
        another order is refused with ``PAYMENT_ORDER_MISMATCH``. The amount is
        compared with the order by the operations, not here.
        """
        if self.requires_confirm_call:
            raise UnsupportedFeature(self.pg_name, "confirm")
        result = self.confirm_lookup(request)
        if result.order_number != request.order.order_number:
            raise self.confirm_mismatch(request)
        return result

    def confirm_mismatch(self, request: ConfirmRequest) -> InvalidRequest:
        """The error for a payment that names another order than the one confirmed."""
        return InvalidRequest(
            f"{self.alias}: payment {request.payment_id} belongs to another order", gateway=self.alias, code="PAYMENT_ORDER_MISMATCH"
        )

    def confirm_lookup(self, request: ConfirmRequest) -> PaymentResult:
        """The payment a confirm reads (default: :meth:`lookup` by its id)."""
        return self.lookup(payment_id=request.payment_id)


__all__ = ["CANCEL_VERBS", "REFUSED", "AccessToken", "AccessTokenCache", "HttpGateway"]
