"""The ``PGPAY_SANDBOX`` setting, read at call time.

::

    PGPAY_SANDBOX = {
        "TOSS": {
            # Keys the emulated Toss accepts. Make them up; they must start with
            # "test_" (a live key is refused by a system check).
            "CLIENT_KEYS": [os.environ.get("TOSS_CLIENT_KEY", "test_ck_sandbox")],
            "SECRET_KEYS": [os.environ.get("TOSS_SECRET_KEY", "test_sk_sandbox")],
            # Where the emulated Toss posts its webhooks (absolute, or a path
            # resolved against the host the sandbox was called on).
            "WEBHOOK_URL": "http://127.0.0.1:8000/pay/webhooks/toss/",
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
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

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


def site_url() -> str:
    """Origin used to resolve a relative ``WEBHOOK_URL`` when no request is at hand."""
    return str(sandbox_settings().get("SITE_URL") or "http://127.0.0.1:8000").rstrip("/")


def allowed() -> bool:
    """The sandbox may serve: ``DEBUG`` is on, or ``PGPAY["SANDBOX_ALLOW_WITHOUT_DEBUG"]`` says so."""
    return bool(settings.DEBUG or pgpay_setting("SANDBOX_ALLOW_WITHOUT_DEBUG"))
