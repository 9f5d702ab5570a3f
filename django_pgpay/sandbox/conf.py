"""The ``PGPAY_SANDBOX`` setting, read at call time.

::

    PGPAY_SANDBOX = {
        "TOSS": {
            # Keys the emulated Toss accepts. Make them up; they must start with
            # "test_" (a live key is refused by a system check).
            "CLIENT_KEYS": [os.environ.get("TOSS_CLIENT_KEY", "test_ck_sandbox")],
            "SECRET_KEYS": [os.environ.get("TOSS_SECRET_KEY", "test_sk_sandbox")],
            # Where the emulated Toss posts its webhooks: the shop's Toss webhook
            # URL (pay/<alias>/webhook/), as a path resolved against the host
            # the sandbox was called on, or absolute.
            "WEBHOOK_URL": "/pay/toss/webhook/",
        },
        "STRIPE": {
            # Made-up keys shaped like Stripe's ("sk_test_"); the gateway's
            # WEBHOOK_SECRETS holds the same made-up signing secret.
            "SECRET_KEYS": [os.environ.get("STRIPE_SECRET_KEY", "sk_test_sandbox")],
            "WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_sandbox"),
            "WEBHOOK_URL": "/pay/stripe/webhook/",
        },
        "WEBHOOKS": {"DELIVERY": "thread"},   # or "manual" in tests
    }

Only the PGs named here are served; an emulator without a section answers
every API call with its PG's "unauthorised key" error. Nothing is read at
import time, so tests may change the setting with ``override_settings``.

The sandbox's own URLs follow the host it is called on: a relative
``WEBHOOK_URL`` is resolved against the host of the request that made the
payment, or, without one (a call from a shell), against ``SITE_URL``, else the
host of the latest request this process served, else ``http://127.0.0.1:8000``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from ..conf import setting as pgpay_setting

#: Defaults of ``PGPAY_SANDBOX["WEBHOOKS"]``.
WEBHOOK_DEFAULTS: dict[str, Any] = {
    #: "thread": a daemon thread in each server process delivers due webhooks
    #: (started by the first request to the sandbox); "manual": only
    #: ``manage.py pgpay_sandbox deliver``, the control API or
    #: :func:`django_pgpay.sandbox.control.deliver_webhooks` send them.
    "DELIVERY": "thread",
    #: Seconds between two looks at the outbox by the thread.
    "POLL_INTERVAL": 0.5,
    #: Read timeout, in seconds, of one delivery (connect timeout is 3.05 s).
    "TIMEOUT": 10.0,
    #: Multiplies every retry delay: 1.0 is the PG's real schedule, 0.001
    #: turns Toss's 1 minute into 60 ms. Advancing the sandbox clock works too.
    "TIME_SCALE": 1.0,
    #: Seconds between retries; None takes each PG's own schedule.
    "RETRY_SCHEDULE": None,
    #: Seconds a process may hold a delivery it claimed before another
    #: process may take it over (a crashed worker).
    "LEASE": 60.0,
}


def sandbox_settings() -> dict[str, Any]:
    """The whole ``PGPAY_SANDBOX`` dict (empty when unset)."""
    value = getattr(settings, "PGPAY_SANDBOX", None)
    return value if isinstance(value, dict) else {}


def pg_settings(section: str) -> dict[str, Any] | None:
    """``PGPAY_SANDBOX[section]`` (e.g. ``"TOSS"``), or None when that PG is not configured."""
    value = sandbox_settings().get(section)
    return value if isinstance(value, dict) else None


def webhook_option(name: str) -> Any:
    """One key of ``PGPAY_SANDBOX["WEBHOOKS"]`` with its default."""
    if name not in WEBHOOK_DEFAULTS:
        raise KeyError(f"unknown PGPAY_SANDBOX['WEBHOOKS'] key {name!r}")
    section = sandbox_settings().get("WEBHOOKS") or {}
    return section.get(name, WEBHOOK_DEFAULTS[name]) if isinstance(section, dict) else WEBHOOK_DEFAULTS[name]


def control_token() -> str:
    """``PGPAY_SANDBOX["CONTROL_TOKEN"]``: when set, the HTTP control API wants it in ``X-Sandbox-Token``."""
    return str(sandbox_settings().get("CONTROL_TOKEN") or "")


#: Where a server listens when no request told us yet (runserver's default).
DEFAULT_SITE_URL = "http://127.0.0.1:8000"

_latest_origin = ""
_origin_lock = threading.Lock()


def site_url() -> str:
    """Origin used to resolve a relative ``WEBHOOK_URL`` when no request is at hand.

    ``PGPAY_SANDBOX["SITE_URL"]`` when set; otherwise the origin of the latest
    request this process served (so a ``runserver 8114`` sends its webhooks to
    port 8114); otherwise :data:`DEFAULT_SITE_URL`.
    """
    configured = sandbox_settings().get("SITE_URL")
    if configured:
        return str(configured).rstrip("/")
    return _latest_origin or DEFAULT_SITE_URL


def remember_origin(sender=None, environ=None, scope=None, **kwargs) -> None:
    """``request_started`` receiver: keep the origin (scheme and host) of the request, if the host is allowed.

    The host is checked against ``ALLOWED_HOSTS`` as Django checks it
    (``localhost`` and ``127.0.0.1`` with ``DEBUG`` and no ``ALLOWED_HOSTS``), so
    a forged ``Host`` header never becomes the address webhooks are sent to.
    """
    global _latest_origin
    scheme, host = "http", ""
    if environ is not None:
        scheme = str(environ.get("wsgi.url_scheme") or "http")
        host = str(environ.get("HTTP_HOST") or "")
    elif scope is not None:
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        headers = dict(scope.get("headers") or ())
        host = headers.get(b"host", b"").decode("latin-1")
    domain, _port = split_domain_port(host)
    allowed = list(settings.ALLOWED_HOSTS) or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return
    with _origin_lock:
        _latest_origin = f"{scheme}://{host}"


def forget_origin() -> None:
    """Drop the remembered origin (tests)."""
    global _latest_origin
    with _origin_lock:
        _latest_origin = ""


def allowed() -> bool:
    """The sandbox may serve: ``DEBUG`` is on, or ``PGPAY["SANDBOX_ALLOW_WITHOUT_DEBUG"]`` says so."""
    # Only True itself: "False" read from the environment is true in Python (django_pgpay.E010 names it).
    return bool(settings.DEBUG) or pgpay_setting("SANDBOX_ALLOW_WITHOUT_DEBUG") is True
