"""HTTP for gateways: one ``requests.Session`` per gateway, explicit timeouts.

Retries happen only where they cannot move money twice: a GET, or a
connection that never opened. A POST whose answer was lost is reported as
:class:`~django_pgpay.exceptions.GatewayUnavailable` with ``sent=True`` so the
caller looks the payment up instead of sending it again.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..exceptions import GatewayUnavailable

logger = logging.getLogger("django_pgpay.http")

#: (connect, read) seconds. A PG's confirm may take a while; connecting may not.
DEFAULT_TIMEOUT = (3.05, 30.0)


#: Digits up to which a Decimal is written out in full (beyond, in exponent form: see :func:`dumps_json`).
_PLAIN_DIGITS = 40


def dumps_json(value: Any) -> str:
    """``json.dumps`` that writes Decimals as JSON numbers without passing through float.

    A whole Decimal with no fraction digits (``Decimal(20000)``) is written as the integer it
    is; any other goes through a marker string, fresh per call (no user text can forge it),
    that is then replaced by its digits (``Decimal("10.50")`` is ``10.50``). Only calls with
    such a Decimal pay for that replacement.
    """
    marker = ""

    def default(obj):
        nonlocal marker
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError("cannot send a non-finite amount")
            exponent = obj.as_tuple().exponent
            if exponent >= 0 and obj.adjusted() < _PLAIN_DIGITS and not (obj.is_zero() and obj.is_signed()):
                return int(obj)  # exact, and the same digits as f"{obj:f}"
            marker = marker or f"dec{uuid.uuid4().hex}:"
            if abs(exponent) > _PLAIN_DIGITS or obj.adjusted() >= _PLAIN_DIGITS:
                # No amount is this large or this fine: written as Decimal spells it ("1E+400000"), a valid
                # JSON number, rather than its digits (int() of it took seconds of CPU; json refuses 4,300 digits).
                return f"{marker}{obj}"
            return f"{marker}{obj:f}"
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    text = json.dumps(value, default=default, ensure_ascii=False)
    if not marker:
        return text
    return re.sub(rf'"{marker}(-?[0-9]+(?:\.[0-9]+)?(?:E[-+][0-9]+)?)"', r"\1", text)


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads_json(text: str | bytes) -> Any:
    """Parse JSON with numbers that are not integers read as Decimal.

    Raises ``ValueError`` (never ``RecursionError``) for text that is not
    JSON, is nested deeper than :data:`~django_pgpay.inputs.MAX_JSON_DEPTH`, or
    spells ``NaN``/``Infinity``: a PG's reply or a webhook body of that kind is
    malformed, not a crash.
    """
    from ..inputs import MAX_JSON_DEPTH, json_depth

    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
    except RecursionError as exc:  # pragma: no cover - the depth check comes first
        raise ValueError("JSON nested too deeply") from exc


@dataclass(frozen=True)
class HttpReply:
    """A PG's HTTP answer: status, headers and the parsed JSON body (or None)."""

    status: int
    headers: Mapping[str, str]
    data: Any
    text: str = field(repr=False, default="")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class GatewayHttp:
    """A ``requests.Session`` with a base URL, timeouts and safe retries.

    Credentials are added per request by the gateway (``auth`` or headers); this
    class never logs headers or bodies.
    """

    def __init__(
        self,
        alias: str,
        base_url: str,
        *,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        retries: int = 2,
        headers: Mapping[str, str] | None = None,
    ):
        self.alias = alias
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "django-pgpay"})
        if headers:
            self.session.headers.update(headers)
        retry = Retry(
            total=retries,
            connect=retries,  # the request never left: safe for every method
            read=0,  # an answer lost after sending is never retried here
            status=retries,
            allowed_methods=frozenset({"GET", "HEAD"}),
            status_forcelist=(502, 503, 504),
            backoff_factor=0.2,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=20)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"<GatewayHttp {self.alias} {self.base_url}>"

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
    ) -> HttpReply:
        """Send one request; raise :class:`GatewayUnavailable` when no answer came."""
        send_headers = dict(headers or {})
        data: Any = None
        if json_body is not None:
            data = dumps_json(json_body).encode("utf-8")
            send_headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            data = form
        try:
            response = self.session.request(
                method,
                self.url(path),
                data=data,
                params=params,
                headers=send_headers,
                auth=auth,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise GatewayUnavailable(f"{self.alias}: connection timed out", gateway=self.alias, code="CONNECT_TIMEOUT", sent=False) from exc
        except requests.exceptions.ConnectionError as exc:
            # A connection that could not be opened never carried the request;
            # one that broke later may have.
            sent = not _is_connect_failure(exc)
            raise GatewayUnavailable(f"{self.alias}: connection failed", gateway=self.alias, code="CONNECTION_ERROR", sent=sent) from exc
        except requests.exceptions.Timeout as exc:
            raise GatewayUnavailable(f"{self.alias}: no answer within {self.timeout} s", gateway=self.alias, code="TIMEOUT") from exc
        except requests.exceptions.RequestException as exc:
            raise GatewayUnavailable(
                f"{self.alias}: request failed ({type(exc).__name__})", gateway=self.alias, code="REQUEST_ERROR"
            ) from exc
        text = response.text
        data_out: Any = None
        if text.strip():
            try:
                data_out = loads_json(text)
            except ValueError:
                data_out = None
        logger.debug("%s %s %s -> %s", self.alias, method, path, response.status_code)
        return HttpReply(status=response.status_code, headers=dict(response.headers), data=data_out, text=text)


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the error happened while opening the connection."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)
