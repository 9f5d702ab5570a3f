"""What PortOne V1 and V2 share: settings, amounts, times, the window's plumbing."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse

from ..base import ApiContext, ApiError, Problem, SandboxPG, guard, loads
from ..models import SandboxPayment
from ..window import PaymentWindow
from ..wire import is_http_url

KST = ZoneInfo("Asia/Seoul")
_DIGITS = string.digits
_ALNUM = string.ascii_letters + string.digits


# --- small helpers ----------------------------------------------------------------------


def unix(moment: datetime) -> int:
    """Unix seconds (V1's times)."""
    return int(moment.timestamp())


def rfc3339(moment: datetime) -> str:
    """V2's times: UTC, milliseconds, ``Z``."""
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def number(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON number or a form string, or None."""
    if value is None or isinstance(value, (bool, float)):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 30 or not text.isascii():
            return None
        try:
            found = Decimal(text)
        except InvalidOperation:
            return None
        return found if found.is_finite() else None
    return None


def stored(amount: Decimal) -> int | str:
    """How an amount is kept in a JSONField: an int when whole, else the decimal string (never a float)."""
    return int(amount) if amount == amount.to_integral_value() else str(amount.normalize())


def money(value: Any) -> Decimal:
    """An amount kept by :func:`stored`, back as Decimal."""
    return Decimal(str(value))


def wire(amount: Decimal) -> int | Decimal:
    """An amount as it goes on the wire: a JSON integer when whole."""
    return int(amount) if amount == amount.to_integral_value() else amount


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def _random(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _format(amount: Decimal) -> str:
    return f"{amount:,.0f}" if amount == amount.to_integral_value() else f"{amount:,}"


#: The window's "when the shop verifies this payment" choices: (fault kind, label).
LOOKUP_FAULT_CHOICES = [
    ("", "normal"),
    ("error_before", "error_before"),
    ("timeout_before", "timeout_before"),
    ("malformed_before", "malformed_before"),
]


class _PortOneCommon(PaymentWindow, SandboxPG):
    """What both PortOne emulators share: settings, bodies, the window's plumbing."""

    window_template = "pgpay_sandbox/portone/pay.html"
    window_error_template = "pgpay_sandbox/portone/error.html"
    window_fault_operation = "lookup"
    window_fault_field = "lookup_fault"
    window_fault_choices = LOOKUP_FAULT_CHOICES

    def window_token_ok(self, request: HttpRequest, payment: SandboxPayment) -> bool:
        return _same(request.POST.get("window_token", ""), str(payment.session.get("window_token", "")))

    def window_is_open(self, payment: SandboxPayment) -> bool:
        return bool(payment.session.get("window"))

    def window_finish(self, request: HttpRequest, payment: SandboxPayment, result: dict) -> HttpResponse:
        """Back to the shop with ``result``, the way the window was opened."""
        return self._finish_window(request, payment.session.get("mode", "iframe"), result, self._redirect_url(payment.session, result))

    settings_section = "PORTONE"
    key_settings = ("IMP_KEYS", "IMP_SECRETS", "V2_API_SECRETS")
    required_key_settings = ("IMP_KEYS", "V2_API_SECRETS")

    def _list(self, name: str) -> list[str]:
        value = self.config().get(name) or []
        return [v for v in value if isinstance(v, str) and v] if isinstance(value, (list, tuple)) else []

    def _seconds(self, name: str, default: float) -> timedelta:
        return timedelta(seconds=float(self.config().get(name, default)))

    @property
    def sandbox_payments(self) -> bool:
        """Payments are made on a test channel (``sandbox: true`` / channel ``TEST``): default True."""
        return bool(self.config().get("TEST_CHANNEL", True))

    def parse_body(self, ctx: ApiContext) -> Any:
        """JSON, or a form (V1 takes both)."""
        request = ctx.request
        if not request.body:
            return None
        content_type = request.content_type or ""
        if content_type == "application/x-www-form-urlencoded" or (
            not request.body.lstrip().startswith((b"{", b"[")) and b"=" in request.body and content_type != "application/json"
        ):
            try:
                form = QueryDict(request.body, encoding="utf-8")
            except (ValueError, UnicodeDecodeError) as exc:
                raise self.problem(Problem.MALFORMED_BODY) from exc
            return {k: form.get(k) for k in form}
        try:
            return loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self.problem(Problem.MALFORMED_BODY) from exc

    def _data(self, ctx: ApiContext) -> Any:
        """The body, parsed once (PUT bodies too); None when unreadable (the handler says why)."""
        if ctx.data is None and ctx.request.body:
            try:
                ctx.data = self.parse_body(ctx)
            except ApiError:
                return None
        return ctx.data

    def _locked(self, key: Any, pg: str | None = None) -> SandboxPayment | None:
        if not isinstance(key, str) or not key:
            return None
        return SandboxPayment.objects.select_for_update().filter(pg=pg or self.name, key=key).first()

    def _resolve(self, url: str, origin: str) -> str:
        if not url or url.startswith(("http://", "https://")):
            return url
        return f"{(origin or _site()).rstrip('/')}/{url.lstrip('/')}"

    def _view_script(self, request: HttpRequest, template: str, checkout: str) -> HttpResponse:
        guard()
        origin = f"{request.scheme}://{request.get_host()}"
        script = render_to_string(template, {"checkout_url": request.build_absolute_uri(reverse(checkout)), "origin": origin})
        response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
        response["Cache-Control"] = "no-store"
        response["Access-Control-Allow-Origin"] = "*"
        return response

    def _checkout_payload(self, request: HttpRequest) -> dict | None:
        try:
            payload = loads(request.POST.get("payload", ""))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _checkout_request(self, request: HttpRequest, redirect_field: str) -> tuple[dict, dict, dict] | HttpResponse:
        """The start both checkouts share: POST only, the SDK's JSON payload, its params and the window's session.

        Answers ``(payload, params, session)``, or the window's error page. The
        session holds the mode (``iframe`` or ``redirect``), the redirect URL
        under the PG version's own name (``redirect_field``, kept only when it
        is an absolute http(s) URL) and the buyer's user agent.
        """
        guard()
        if request.method != "POST":
            return self.window_error(request, "INVALID_REQUEST", "POST only.", status=405)
        payload = self._checkout_payload(request)
        if payload is None or not isinstance(payload.get("params"), dict):
            return self.window_error(request, "INVALID_REQUEST", "payload is not JSON.")
        params = dict(payload["params"])
        redirect = params.get(redirect_field)
        session = {
            "mode": "redirect" if payload.get("mode") == "redirect" else "iframe",
            redirect_field: redirect if is_http_url(redirect) else "",
            "userAgent": str(payload.get("userAgent") or request.headers.get("User-Agent", ""))[:300],
        }
        return payload, params, session

    def _finish_window(self, request: HttpRequest, mode: str, result: dict, redirect_url: str) -> HttpResponse:
        """Back to the shop: the iframe posts ``result`` to the SDK; redirect mode goes to ``redirect_url``."""
        if mode == "redirect" and redirect_url:
            return HttpResponseRedirect(redirect_url)
        return render(request, "pgpay_sandbox/portone/done.html", {"result": result, "title": self.title})


def _site() -> str:
    from ..conf import site_url

    return site_url()


def _mask(key: str) -> str:
    return f"{key[:8]}…{key[-4:]}" if isinstance(key, str) and len(key) > 14 else "…"


#: ``vbank_due`` as ``IMP.request_pay`` takes it, in Korean time: PortOne's playground writes
#: YYYYMMDDhhmm; a date alone (YYYYMMDD, YYYY-MM-DD) means the end of that day. Each shape is
#: matched whole first (``strptime`` alone reads "20261209" as 2026-01-02 00:09).
VBANK_DUE_SHAPES = (
    (re.compile(r"\d{12}"), "%Y%m%d%H%M", False),
    (re.compile(r"\d{14}"), "%Y%m%d%H%M%S", False),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"), "%Y-%m-%d %H:%M:%S", False),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"), "%Y-%m-%d %H:%M", False),
    (re.compile(r"\d{8}"), "%Y%m%d", True),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "%Y-%m-%d", True),
)


def parse_vbank_due(value: Any) -> datetime | None:
    """``vbank_due`` as an aware time, or None when it is not one of :data:`VBANK_DUE_SHAPES`."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    for shape, pattern, date_only in VBANK_DUE_SHAPES:
        if not shape.fullmatch(text):
            continue
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:  # a shape that fits with a month 13, a 25th hour ...
            return None
        if date_only:
            parsed = parsed.replace(hour=23, minute=59, second=59)
        return parsed.replace(tzinfo=KST)
    return None
