"""System checks of the sandbox app.

- ``pgpay_sandbox.E001``: the app is installed while ``DEBUG`` is False and
  ``PGPAY["SANDBOX_ALLOW_WITHOUT_DEBUG"]`` is not true (its views answer 404
  then too, for servers that skip checks).
- ``pgpay_sandbox.E002``: ``PGPAY_SANDBOX`` has the wrong shape (the message
  names the key).
- ``pgpay_sandbox.E003``: a configured key is not a test key (Toss, PortOne,
  Bootpay: it starts with ``test_``; Stripe: ``sk_test_``/``rk_test_``; never give
  the sandbox a live key; the key itself is never printed).
- ``pgpay_sandbox.W001``/``W002``: nothing is emulated / a PG has no secret key.
- ``pgpay_sandbox.E004``: a ``WEBHOOK_URL`` (``V2_WEBHOOK_URL``) does not
  resolve to a URL of this project, ``E005``: it resolves to a view that is not
  django-pgpay's :class:`~django_pgpay.views.WebhookView`, ``E006``: its
  gateway alias is not in ``PGPAY["GATEWAYS"]`` (each of these webhooks would
  be answered 404 or refused, and retried in silence);
  ``pgpay_sandbox.W003``: it goes to the alias of another PG's gateway.
  An absolute URL is checked by its path, on this project's URLconf.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

from . import conf
from .registry import emulators

GENERAL_KEYS = {"WEBHOOKS", "CONTROL_TOKEN", "SITE_URL"}
KEY_LISTS = ("SECRET_KEYS", "CLIENT_KEYS", "APPLICATION_IDS", "PRIVATE_KEYS", "WEB_APPLICATION_IDS")


@checks.register("django_pgpay")
def check_sandbox(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The sandbox may run here, and ``PGPAY_SANDBOX`` makes sense."""
    messages: list[checks.CheckMessage] = []
    if not conf.allowed():
        messages.append(
            checks.Error(
                "django_pgpay.sandbox is installed but DEBUG is False: the sandbox must never run in production.",
                hint='Remove "django_pgpay.sandbox" from INSTALLED_APPS, or set '
                'PGPAY["SANDBOX_ALLOW_WITHOUT_DEBUG"] = True for a demo server.',
                id="pgpay_sandbox.E001",
            )
        )
    raw = getattr(settings, "PGPAY_SANDBOX", None)
    if raw is None:
        messages.append(
            checks.Warning(
                "PGPAY_SANDBOX is not set: no PG is emulated.",
                hint='Add PGPAY_SANDBOX = {"TOSS": {"SECRET_KEYS": [...], "CLIENT_KEYS": [...], "WEBHOOK_URL": ...}}.',
                id="pgpay_sandbox.W001",
            )
        )
        return messages
    if not isinstance(raw, dict):
        return [*messages, checks.Error("PGPAY_SANDBOX must be a dict.", id="pgpay_sandbox.E002")]
    sections: dict = {}
    for pg in emulators():  # the first emulator of a shared section checks it
        sections.setdefault(pg.settings_section, pg)
    for name in raw:
        if name not in sections and name not in GENERAL_KEYS:
            messages.append(
                checks.Error(
                    f"PGPAY_SANDBOX[{name!r}] is not a sandbox setting.",
                    hint=f"Known: {', '.join(sorted(set(sections) | GENERAL_KEYS))}.",
                    id="pgpay_sandbox.E002",
                )
            )
    for section, pg in sections.items():
        if section in raw:
            messages.extend(_check_pg(section, raw[section], pg))
    webhooks = raw.get("WEBHOOKS", {})
    if not isinstance(webhooks, dict):
        messages.append(checks.Error('PGPAY_SANDBOX["WEBHOOKS"] must be a dict.', id="pgpay_sandbox.E002"))
    else:
        for name in webhooks:
            if name not in conf.WEBHOOK_DEFAULTS:
                messages.append(checks.Error(f'PGPAY_SANDBOX["WEBHOOKS"][{name!r}] is not a setting.', id="pgpay_sandbox.E002"))
        if webhooks.get("DELIVERY", "thread") not in ("thread", "manual"):
            messages.append(checks.Error('PGPAY_SANDBOX["WEBHOOKS"]["DELIVERY"] must be "thread" or "manual".', id="pgpay_sandbox.E002"))
        for name in ("POLL_INTERVAL", "TIMEOUT", "TIME_SCALE", "LEASE"):
            value = webhooks.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                messages.append(checks.Error(f'PGPAY_SANDBOX["WEBHOOKS"][{name!r}] must be a number >= 0.', id="pgpay_sandbox.E002"))
        schedule = webhooks.get("RETRY_SCHEDULE")
        if schedule is not None and (
            not isinstance(schedule, (list, tuple))
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0 for s in schedule)
        ):
            messages.append(checks.Error('PGPAY_SANDBOX["WEBHOOKS"]["RETRY_SCHEDULE"] must be a list of seconds.', id="pgpay_sandbox.E002"))
    return messages


def _check_pg(section: str, value, pg) -> list[checks.CheckMessage]:
    where = f"PGPAY_SANDBOX[{section!r}]"
    if not isinstance(value, dict):
        return [checks.Error(f"{where} must be a dict.", id="pgpay_sandbox.E002")]
    messages = []
    key_lists = pg.key_settings if pg is not None else KEY_LISTS
    required = pg.required_key_settings if pg is not None else ("SECRET_KEYS",)
    for name in key_lists:
        keys = value.get(name, [])
        if isinstance(keys, str) or not isinstance(keys, (list, tuple)):
            messages.append(checks.Error(f"{where}[{name!r}] must be a list of keys.", id="pgpay_sandbox.E002"))
            continue
        for index, key in enumerate(keys):
            if not isinstance(key, str) or not key:
                messages.append(checks.Error(f"{where}[{name!r}][{index}] must be a non-empty string.", id="pgpay_sandbox.E002"))
            elif not pg.is_test_key(name, key):
                messages.append(
                    checks.Error(
                        f'{where}[{name!r}][{index}] does not start with "{pg.test_key_hint}".',
                        hint="The sandbox takes made-up test keys only; never give it a live key.",
                        id="pgpay_sandbox.E003",
                    )
                )
    if not any(isinstance(value.get(name), (list, tuple)) and value.get(name) for name in required):
        names = " and ".join(f"[{name!r}]" for name in required).replace("'", '"')
        messages.append(
            checks.Warning(
                f"{where}{names} {'is' if len(required) == 1 else 'are'} empty: every API call will be refused.",
                id="pgpay_sandbox.W002",
            )
        )
    url = value.get("WEBHOOK_URL", "")
    if url is not None and not isinstance(url, str):
        messages.append(checks.Error(f'{where}["WEBHOOK_URL"] must be a URL or a path.', id="pgpay_sandbox.E002"))
    messages.extend(pg.check_config(value))
    return messages


#: Each sandbox setting that names a webhook URL, and the gateway class whose webhooks it carries.
WEBHOOK_SETTINGS = {
    ("TOSS", "WEBHOOK_URL"): "django_pgpay.gateways.toss.TossGateway",
    ("STRIPE", "WEBHOOK_URL"): "django_pgpay.gateways.stripe.StripeGateway",
    ("PORTONE", "WEBHOOK_URL"): "django_pgpay.gateways.portone.PortOneV1Gateway",
    ("PORTONE", "V2_WEBHOOK_URL"): "django_pgpay.gateways.portone.PortOneV2Gateway",
    ("BOOTPAY", "WEBHOOK_URL"): "django_pgpay.gateways.bootpay.BootpayGateway",
}


@checks.register("django_pgpay", checks.Tags.urls)
def check_webhook_urls(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every configured ``WEBHOOK_URL`` of ``PGPAY_SANDBOX`` reaches django-pgpay's webhook view for that PG."""
    raw = getattr(settings, "PGPAY_SANDBOX", None)
    if not isinstance(raw, dict):
        return []
    messages: list[checks.CheckMessage] = []
    for (section, name), gateway_class in WEBHOOK_SETTINGS.items():
        value = raw.get(section)
        url = value.get(name) if isinstance(value, dict) else None
        if url and isinstance(url, str):
            messages.extend(_check_webhook_url(f"PGPAY_SANDBOX[{section!r}][{name!r}]".replace("'", '"'), url, gateway_class))
    return messages


def _check_webhook_url(where: str, url: str, gateway_class: str) -> list[checks.CheckMessage]:
    from ..conf import gateway_aliases
    from ..views import WebhookView

    path = "/" + urlsplit(url).path.lstrip("/")  # an absolute URL is checked by its path
    prefix = (getattr(settings, "FORCE_SCRIPT_NAME", None) or "").rstrip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    hint = 'The webhook URL of a gateway alias is "<prefix>/<alias>/webhook/" under path("<prefix>/", include("django_pgpay.urls")), e.g. "/pay/toss/webhook/".'
    try:
        match = resolve(path)
    except Resolver404:
        return [
            checks.Error(
                f"{where} = {url!r}: {path} is not a URL of this project; every webhook would be answered 404.",
                hint=hint,
                id="pgpay_sandbox.E004",
            )
        ]
    view_class = getattr(match.func, "view_class", None)
    if not (isinstance(view_class, type) and issubclass(view_class, WebhookView)):
        return [
            checks.Error(
                f"{where} = {url!r}: {path} is served by {match.view_name or match._func_path}, not django-pgpay's webhook view.",
                hint=hint,
                id="pgpay_sandbox.E005",
            )
        ]
    initkwargs = getattr(match.func, "view_initkwargs", {}) or {}
    alias = match.kwargs.get("alias") or initkwargs.get("gateway_alias") or view_class.gateway_alias
    if alias not in gateway_aliases():
        return [
            checks.Error(
                f'{where} = {url!r}: the gateway alias {alias!r} is not in PGPAY["GATEWAYS"]; every webhook would be answered 404.',
                hint=hint,
                id="pgpay_sandbox.E006",
            )
        ]
    entry = settings.PGPAY["GATEWAYS"][alias]
    try:
        configured = import_string(entry["CLASS"]) if isinstance(entry, dict) and entry.get("CLASS") else None
        expected = import_string(gateway_class)
    except ImportError:
        return []  # django_pgpay's own check names the class that cannot be imported
    if isinstance(configured, type) and not issubclass(configured, expected):
        return [
            checks.Warning(
                f"{where} = {url!r} goes to the alias {alias!r}, whose gateway is {configured.__name__}, not a {expected.__name__}.",
                hint="Point it at the webhook URL of the alias that talks to this PG.",
                id="pgpay_sandbox.W003",
            )
        ]
    return []
