"""The ``PGPAY`` setting, read at call time.

::

    PGPAY = {
        "GATEWAYS": {
            "toss": {
                "CLASS": "django_pgpay.gateways.toss.TossGateway",
                "OPTIONS": {"CLIENT_KEY": env("TOSS_CLIENT_KEY"), "SECRET_KEY": env("TOSS_SECRET_KEY")},
            },
        },
        "DEFAULT_GATEWAY": "toss",
    }

Nothing is read at import time: tests may override the setting, and the
gateway instances built from it are dropped whenever it changes.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .exceptions import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from .gateways.base import BaseGateway

DEFAULTS: dict[str, Any] = {
    "GATEWAYS": {},
    "DEFAULT_GATEWAY": None,
    #: ISO code given to new orders that do not set one.
    "CURRENCY": "KRW",
    #: Prepended to generated order numbers (letters, digits, ``-`` and ``_``).
    "ORDER_NUMBER_PREFIX": "",
    #: Seconds a READY order waits for its payment before it may expire.
    "READY_TIMEOUT": 30 * 60,
    #: Seconds after which a pending ledger row whose process went silent is
    #: presumed abandoned, so a lookup at the PG may settle it.
    "IN_FLIGHT_TIMEOUT": 120,
    #: Seconds ``confirm()`` waits for a concurrent confirm of the same payment
    #: before it answers "in progress".
    "CONFIRM_WAIT": 8,
    #: Let the sandbox app run with ``DEBUG = False`` (for demos on a server).
    "SANDBOX_ALLOW_WITHOUT_DEBUG": False,
    #: Start CSV exports with a UTF-8 byte order mark, so Excel reads Hangul right.
    "CSV_BOM": True,
    #: PDF invoices: the seller's details and rendering options
    #: (see :mod:`django_pgpay.invoices` for the keys).
    "INVOICE": {},
    #: The alias in Django's ``TASKS`` that django-pgpay's tasks are enqueued on
    #: (:mod:`django_pgpay.tasks`). With no ``TASKS`` (or the immediate backend)
    #: everything runs inline, as without a worker.
    "TASK_BACKEND": "default",
    #: Admin CSV exports of more orders than this run as a task when a queueing
    #: backend is configured (progress and the file on the job's admin page).
    "BACKGROUND_EXPORT_ROWS": 20000,
    #: Admin invoice batches of more orders than this run as a task likewise.
    "BACKGROUND_INVOICES": 100,
}


def setting(name: str) -> Any:
    """One key of ``PGPAY`` with its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown PGPAY key {name!r}")
    user = getattr(settings, "PGPAY", None) or {}
    return user.get(name, DEFAULTS[name])


def ready_timeout() -> timedelta:
    return timedelta(seconds=int(setting("READY_TIMEOUT")))


def in_flight_timeout() -> timedelta:
    return timedelta(seconds=int(setting("IN_FLIGHT_TIMEOUT")))


def gateway_aliases() -> list[str]:
    gateways = setting("GATEWAYS")
    return list(gateways) if isinstance(gateways, dict) else []


def default_gateway_alias() -> str:
    """The alias used when an order does not name one."""
    alias = setting("DEFAULT_GATEWAY")
    if alias:
        return alias
    aliases = gateway_aliases()
    if len(aliases) == 1:
        return aliases[0]
    raise ConfigurationError('PGPAY["DEFAULT_GATEWAY"] is not set and there is not exactly one gateway.')


def gateway_config(alias: str) -> dict[str, Any]:
    """The ``GATEWAYS[alias]`` entry, or a :class:`ConfigurationError` naming the key."""
    gateways = setting("GATEWAYS")
    if not isinstance(gateways, dict) or alias not in gateways:
        raise ConfigurationError(f'PGPAY["GATEWAYS"][{alias!r}] is not configured.')
    entry = gateways[alias]
    if not isinstance(entry, dict) or not entry.get("CLASS"):
        raise ConfigurationError(f'PGPAY["GATEWAYS"][{alias!r}]["CLASS"] is missing.')
    return entry


_cache: dict[str, BaseGateway] = {}
_cache_lock = threading.Lock()


def get_gateway(alias: str | None = None) -> BaseGateway:
    """The gateway instance for ``alias`` (the default gateway when None).

    Instances are shared (each owns one ``requests.Session`` and, for PGs with
    tokens, a token cache) and rebuilt when ``PGPAY`` changes.
    """
    alias = alias or default_gateway_alias()
    with _cache_lock:
        gateway = _cache.get(alias)
        if gateway is None:
            entry = gateway_config(alias)
            try:
                cls = import_string(entry["CLASS"])
            except ImportError as exc:
                raise ConfigurationError(f'PGPAY["GATEWAYS"][{alias!r}]["CLASS"] = {entry["CLASS"]!r} cannot be imported: {exc}') from exc
            gateway = cls(alias, dict(entry.get("OPTIONS") or {}))
            _cache[alias] = gateway
        return gateway


def reset_gateways() -> None:
    """Forget every gateway instance (their sessions are closed)."""
    with _cache_lock:
        for gateway in _cache.values():
            gateway.close()
        _cache.clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting == "PGPAY":
        reset_gateways()
