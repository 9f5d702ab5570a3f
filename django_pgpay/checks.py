"""System checks for the ``PGPAY`` setting and the models that use the app.

Every message names the exact key to fix, e.g.
``PGPAY["GATEWAYS"]["toss"]["OPTIONS"]["SECRET_KEY"] is not set.``
"""

from __future__ import annotations

import re

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .money import MoneyError, normalize_currency


@checks.register("django_pgpay")
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The shape of ``PGPAY``: gateways, their classes and options, the default alias, the currency."""
    from .gateways.base import BaseGateway

    messages: list[checks.CheckMessage] = []
    config = getattr(settings, "PGPAY", None)
    if config is None:
        return [
            checks.Warning(
                "PGPAY is not set: no payment gateway is configured.",
                hint='Add PGPAY = {"GATEWAYS": {...}, "DEFAULT_GATEWAY": ...} to your settings.',
                id="django_pgpay.W001",
            )
        ]
    if not isinstance(config, dict):
        return [checks.Error("PGPAY must be a dict.", id="django_pgpay.E001")]
    gateways = config.get("GATEWAYS", {})
    if not isinstance(gateways, dict):
        return [checks.Error('PGPAY["GATEWAYS"] must be a dict of alias -> {"CLASS": ..., "OPTIONS": {...}}.', id="django_pgpay.E001")]

    for alias, entry in gateways.items():
        where = f'PGPAY["GATEWAYS"][{alias!r}]'
        if not re.fullmatch(r"[a-z0-9_-]{1,32}", str(alias)):
            messages.append(checks.Error(f"{where}: aliases are 1-32 of a-z, 0-9, '-', '_'.", id="django_pgpay.E002"))
            continue
        if not isinstance(entry, dict):
            messages.append(checks.Error(f"{where} must be a dict.", id="django_pgpay.E002"))
            continue
        path = entry.get("CLASS")
        if not path:
            messages.append(checks.Error(f'{where}["CLASS"] is missing.', id="django_pgpay.E002"))
            continue
        try:
            cls = import_string(path)
        except ImportError as exc:
            messages.append(checks.Error(f'{where}["CLASS"] = {path!r} cannot be imported: {exc}', id="django_pgpay.E002"))
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseGateway)):
            messages.append(checks.Error(f'{where}["CLASS"] = {path!r} is not a BaseGateway subclass.', id="django_pgpay.E002"))
            continue
        options = entry.get("OPTIONS", {})
        if not isinstance(options, dict):
            messages.append(checks.Error(f'{where}["OPTIONS"] must be a dict.', id="django_pgpay.E002"))
            continue
        messages.extend(cls(alias, options).check(debug=settings.DEBUG))

    default = config.get("DEFAULT_GATEWAY")
    if default is not None and default not in gateways:
        messages.append(
            checks.Error(f'PGPAY["DEFAULT_GATEWAY"] = {default!r} is not a key of PGPAY["GATEWAYS"].', id="django_pgpay.E003")
        )
    elif default is None and len(gateways) > 1:
        messages.append(
            checks.Error('PGPAY["DEFAULT_GATEWAY"] is not set and there are several gateways.', id="django_pgpay.E003")
        )
    if "CURRENCY" in config:
        try:
            normalize_currency(config["CURRENCY"])
        except MoneyError:
            messages.append(checks.Error(f'PGPAY["CURRENCY"] = {config["CURRENCY"]!r} is not an ISO 4217 code.', id="django_pgpay.E005"))
    prefix = config.get("ORDER_NUMBER_PREFIX", "")
    if prefix and not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", str(prefix)):
        messages.append(
            checks.Error('PGPAY["ORDER_NUMBER_PREFIX"] must be 1-16 of A-Z, a-z, 0-9, "-", "_".', id="django_pgpay.E006")
        )
    for key in ("READY_TIMEOUT", "IN_FLIGHT_TIMEOUT", "CONFIRM_WAIT"):
        if key in config and (not isinstance(config[key], (int, float)) or isinstance(config[key], bool) or config[key] < 0):
            messages.append(checks.Error(f'PGPAY["{key}"] must be a number of seconds >= 0.', id="django_pgpay.E008"))
    return messages


@checks.register("django_pgpay", checks.Tags.models)
def check_order_models(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every concrete order model has a ledger model pointing at it."""
    from .exceptions import ConfigurationError
    from .models import AbstractOrder

    messages = []
    for model in apps.get_models():
        if issubclass(model, AbstractOrder):
            try:
                model.get_transaction_model()
            except ConfigurationError as exc:
                messages.append(checks.Error(str(exc), obj=model, id="django_pgpay.E007"))
    return messages
