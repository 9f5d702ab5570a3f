"""The sandbox's own pages: the dashboard and the HTTP control API.

Control API (JSON in, JSON out; ``X-Sandbox-Token`` when
``PGPAY_SANDBOX["CONTROL_TOKEN"]`` is set)::

    GET    control/                     state: clock, payments, webhooks, faults
    POST   control/reset
    POST   control/clock                {"advance": 660} or {"offset": 0}
    GET    control/faults               armed faults
    POST   control/faults               {"pg": "toss", "operation": "confirm", "kind": "timeout_after",
                                         "times": 1, "match": "", "params": {"delay": 3}}
    DELETE control/faults
    GET    control/webhooks             the outbox with bodies
    POST   control/webhooks/deliver     {"ids": [..]} (default: all pending, now) or {"due": true}
    POST   control/webhooks/release     release deliveries held by a reorder fault
    POST   control/tick                 time-based changes + due deliveries, once
    POST   control/<pg>/<action>        e.g. control/toss/deposit {"payment_key": "..."}
"""

from __future__ import annotations

import hmac
import inspect
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import conf, control
from .base import ApiError, dumps, guard, loads
from .registry import emulator, emulators


def _json(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(data), status=status, content_type="application/json")


def _error(message: str, status: int = 400, code: str = "INVALID") -> HttpResponse:
    return _json({"error": {"code": code, "message": message}}, status)


def _body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    data = loads(request.body)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


#: The header a script sends to the control API when no ``CONTROL_TOKEN`` is set.
CONTROL_HEADER = "X-Sandbox-Control"


def control_refusal(request: HttpRequest) -> HttpResponse | None:
    """Who may drive the sandbox over HTTP: a 403 for anyone else, None when the request may go on.

    With ``PGPAY_SANDBOX["CONTROL_TOKEN"]`` set, the ``X-Sandbox-Token``
    header must carry it. Without one, the request must carry the
    ``X-Sandbox-Control`` header and, when the browser says where it comes
    from (``Origin``), come from this very site: a page the developer visits
    elsewhere cannot set a custom header without a CORS preflight the sandbox
    never grants, so it cannot reset the sandbox or move its clock.
    """
    token = conf.control_token()
    if token:
        if not hmac.compare_digest(request.headers.get("X-Sandbox-Token", "").encode(), token.encode()):
            return _error("X-Sandbox-Token is missing or wrong.", 403, "FORBIDDEN")
        return None
    if not request.headers.get(CONTROL_HEADER):
        return _error(
            f"Send the {CONTROL_HEADER} header (or set PGPAY_SANDBOX['CONTROL_TOKEN'] and send X-Sandbox-Token).", 403, "FORBIDDEN"
        )
    origin = request.headers.get("Origin")
    if origin and origin != f"{request.scheme}://{request.get_host()}":
        return _error("The control API answers only its own site.", 403, "FORBIDDEN")
    return None


def seconds(value: Any, name: str) -> float:
    """A number of seconds from a request: finite and within ten years, else ``ValueError`` (a 400)."""
    from decimal import Decimal, InvalidOperation

    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a number of seconds")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name} must be a number of seconds") from None
    if not number.is_finite() or abs(number) > MAX_CLOCK_SECONDS:
        raise ValueError(f"{name} must be a finite number of seconds within ten years")
    return float(number)


#: How far the control API and the dashboard move the clock in one go.
MAX_CLOCK_SECONDS = 10 * 366 * 24 * 3600


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ValueError(f"{name} must be a whole number")
    return int(value)


def control_view(methods: tuple[str, ...]):
    """Decorate a control endpoint: sandbox guard, token or same-site header, methods, JSON errors."""

    def wrap(func):
        @csrf_exempt
        def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            guard()
            refused = control_refusal(request)
            if refused is not None:
                return refused
            if request.method not in methods:
                return _error(f"use {' or '.join(methods)}", 405, "METHOD_NOT_ALLOWED")
            try:
                return func(request, *args, **kwargs)
            except ApiError as exc:
                # A request the action cannot read is a 400; a state that does not allow it, a 409.
                default = 400 if "INVALID" in exc.code else 409
                return _error(exc.message or exc.code, exc.status or default, exc.code)
            except (ValueError, TypeError, KeyError) as exc:
                return _error(str(exc))

        view.__name__ = func.__name__
        view.__doc__ = func.__doc__
        return view

    return wrap


@control_view(("GET",))
def control_state(request: HttpRequest) -> HttpResponse:
    return _json(control.state())


@control_view(("POST",))
def control_reset(request: HttpRequest) -> HttpResponse:
    control.reset()
    return _json({"reset": True, "now": control.now().isoformat()})


@control_view(("POST",))
def control_clock(request: HttpRequest) -> HttpResponse:
    data = _body(request)
    offset = seconds(data["offset"], "offset") if "offset" in data else None
    advance = seconds(data["advance"], "advance") if "advance" in data else None
    if advance is not None and advance < 0:
        raise ValueError("advance must not be negative (the clock only moves forward; set offset instead)")
    if offset is not None:
        control.set_clock_offset(timedelta(seconds=offset))
    if advance is not None:
        control.advance_clock(seconds=advance)
    from . import clock

    return _json({"now": clock.now().isoformat(), "offset_seconds": clock.offset().total_seconds()})


@control_view(("GET", "POST", "DELETE"))
def control_faults(request: HttpRequest) -> HttpResponse:
    if request.method == "DELETE":
        return _json({"cleared": control.clear_faults(request.GET.get("pg") or None)})
    if request.method == "POST":
        data = _body(request)
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError("params must be an object")
        fault = control.arm_fault(
            str(data.get("pg", "")),
            str(data.get("operation", "")),
            str(data.get("kind", "")),
            times=_integer(data.get("times", 1), "times"),
            match=str(data.get("match") or ""),
            **params,
        )
        return _json(control.describe_fault(fault), 201)
    from . import faults

    return _json({"faults": [control.describe_fault(f) for f in faults.armed()]})


@control_view(("GET",))
def control_webhooks(request: HttpRequest) -> HttpResponse:
    from .models import SandboxWebhook

    rows = SandboxWebhook.objects.order_by("id")
    if request.GET.get("status"):
        rows = rows.filter(status=request.GET["status"])
    return _json({"webhooks": [control.describe_webhook(w) for w in rows[:500]]})


@control_view(("POST",))
def control_deliver(request: HttpRequest) -> HttpResponse:
    data = _body(request)
    if data.get("due"):
        results = control.deliver_due_webhooks()
    else:
        results = control.deliver_webhooks(data.get("ids"))
    return _json(
        {
            "results": [
                {"id": r.webhook_id, "event_type": r.event_type, "status_code": r.status_code, "error": r.error, "status": r.status}
                for r in results
            ]
        }
    )


@control_view(("POST",))
def control_release(request: HttpRequest) -> HttpResponse:
    return _json({"released": control.release_held_webhooks()})


@control_view(("POST",))
def control_tick(request: HttpRequest) -> HttpResponse:
    return _json(control.tick())


@control_view(("POST",))
def control_action(request: HttpRequest, pg: str, action: str) -> HttpResponse:
    try:
        emulated = emulator(pg)
    except KeyError:
        return _error(f"no sandbox for PG {pg!r}", 404, "NOT_FOUND")
    try:
        run = emulated.action(action)
    except KeyError as exc:
        return _error(str(exc.args[0]), 404, "NOT_FOUND")
    data = _body(request)
    if "origin" in inspect.signature(run).parameters:
        # A window gone through without a browser returns to this host's shop.
        data.setdefault("origin", f"{request.scheme}://{request.get_host()}")
    return _json(run(**data))


# --- the dashboard ------------------------------------------------------------------


def dashboard(request: HttpRequest) -> HttpResponse:
    """What the sandbox holds, the settings to paste into a shop, and buttons for the PG's staff."""
    guard()
    origin = f"{request.scheme}://{request.get_host()}"
    pgs = []
    for pg in emulators():
        base = origin + reverse("pgpay_sandbox:index") + pg.name
        pgs.append(
            {
                "name": pg.name,
                "title": pg.title,
                "configured": pg.configured,
                "api_base": pg.api_base(base),
                "sdk_url": pg.sdk_url(base),
                "client_keys": pg.config().get("CLIENT_KEYS") or [],
                "secret_keys": [_mask(k) for k in (pg.config().get("SECRET_KEYS") or [])],
                "webhook_url": pg.webhook_url(origin),
                **pg.dashboard_context(base),
                "panel": pg.dashboard_panel(request),
            }
        )
    from . import faults
    from .models import SandboxPayment, SandboxWebhook

    # A PG with a section of its own (Stripe) lists its objects there.
    own_section = [pg["name"] for pg in pgs if pg["panel"]]
    rows = []
    for payment in SandboxPayment.objects.exclude(pg__in=own_section).order_by("-id")[:30]:
        try:
            pg = emulator(payment.pg)
        except KeyError:  # a PG removed from the sandbox
            rows.append({"payment": payment, "summary": {}, "buttons": []})
            continue
        rows.append({"payment": payment, "summary": pg.describe(payment), "buttons": pg.dashboard_actions(payment)})
    context = {
        "pgs": pgs,
        "now": control.now(),
        "offset": control.state(limit=0)["offset_seconds"],
        "payments": rows,
        "webhooks": SandboxWebhook.objects.order_by("-id")[:30],
        "faults": faults.armed(),
        "error": request.GET.get("error", "")[:300],
    }
    return render(request, "pgpay_sandbox/index.html", context)


def _mask(key: str) -> str:
    return f"{key[:8]}…{key[-4:]}" if isinstance(key, str) and len(key) > 14 else "…"


#: PG actions the dashboard's buttons may run (each takes the payment's key; ``cancel`` also an amount).
DASHBOARD_ACTIONS = frozenset({"deposit", "revert-deposit", "cancel", "expire", "refund", "settle", "fail"})


@csrf_protect
def dashboard_action(request: HttpRequest) -> HttpResponse:
    """The dashboard's buttons (POST): deliver, tick, advance the clock, clear faults, a PG action.

    A PG action gets ``payment_key`` and, when the form has one, ``amount``
    (Toss: won to cancel; Stripe: the refund in the currency's minor unit).
    """
    guard()
    if request.method != "POST":
        return HttpResponseRedirect(reverse("pgpay_sandbox:index"))
    op = request.POST.get("op", "")
    target = reverse("pgpay_sandbox:index")
    if op == "deliver":
        control.deliver_webhooks()
    elif op == "tick":
        control.tick()
    elif op == "advance":
        try:
            minutes = seconds(request.POST.get("minutes") or "0", "minutes")
            if minutes < 0 or minutes * 60 > MAX_CLOCK_SECONDS:
                raise ValueError("minutes must be a positive number")
        except ValueError as exc:
            return HttpResponseRedirect(target + "?" + urlencode({"error": str(exc)}))
        control.advance_clock(minutes=minutes)
    elif op == "clear_faults":
        control.clear_faults()
    elif op == "reset":
        control.reset()
    elif op == "act":
        pg, action, key = request.POST.get("pg", ""), request.POST.get("action", ""), request.POST.get("payment_key", "")
        if action in DASHBOARD_ACTIONS:
            kwargs: dict[str, Any] = {"payment_key": key}
            amount = (request.POST.get("amount") or "").strip()
            if re.fullmatch(r"[0-9]{1,3}(?:,[0-9]{3})+", amount):
                amount = amount.replace(",", "")  # 2,500 as typed; never 2,5,0,0
            if action in ("cancel", "refund") and amount:
                kwargs["amount"] = amount
            try:
                control.act(pg, action, **kwargs)
            except (ApiError, KeyError, TypeError, ValueError) as exc:
                message = exc.message or exc.code if isinstance(exc, ApiError) else str(exc)
                target += "?" + urlencode({"error": f"{action}: {message}"})
    return HttpResponseRedirect(target)
