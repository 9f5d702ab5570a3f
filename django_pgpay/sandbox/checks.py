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
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from . import conf
from .base import emulators

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
