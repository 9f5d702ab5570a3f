"""System checks for the ``PGPAY`` setting and the models that use the app.

Every message names the exact key to fix, e.g.
``PGPAY["GATEWAYS"]["toss"]["OPTIONS"]["SECRET_KEY"] is not set.``
"""

from __future__ import annotations

import difflib
import math
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
        messages.append(checks.Error(f'PGPAY["DEFAULT_GATEWAY"] = {default!r} is not a key of PGPAY["GATEWAYS"].', id="django_pgpay.E003"))
    elif default is None and len(gateways) > 1:
        messages.append(checks.Error('PGPAY["DEFAULT_GATEWAY"] is not set and there are several gateways.', id="django_pgpay.E003"))
    if "CURRENCY" in config:
        try:
            normalize_currency(config["CURRENCY"])
        except MoneyError:
            messages.append(checks.Error(f'PGPAY["CURRENCY"] = {config["CURRENCY"]!r} is not an ISO 4217 code.', id="django_pgpay.E005"))
    prefix = config.get("ORDER_NUMBER_PREFIX", "")
    if prefix and not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", str(prefix)):
        messages.append(checks.Error('PGPAY["ORDER_NUMBER_PREFIX"] must be 1-16 of A-Z, a-z, 0-9, "-", "_".', id="django_pgpay.E006"))
    for key in ("READY_TIMEOUT", "IN_FLIGHT_TIMEOUT", "CONFIRM_WAIT"):
        if key in config and not _is_number(config[key], high=MAX_SECONDS):
            messages.append(
                checks.Error(f'PGPAY["{key}"] must be a number of seconds from 0 to {MAX_SECONDS} (ten years).', id="django_pgpay.E008")
            )
    return messages + _setting_value_messages(config)


@checks.register("django_pgpay")
def check_in_flight_timeout(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``IN_FLIGHT_TIMEOUT`` is longer than a call to each PG may take (its connect and read timeouts).

    Reconciliation takes an operation older than ``IN_FLIGHT_TIMEOUT`` that the
    PG has no record of for one that never reached it, and fails it; a shorter
    value fails operations whose answer is still on its way.
    """
    from . import conf
    from .gateways.pipeline import timeout_value

    config = getattr(settings, "PGPAY", None)
    if not isinstance(config, dict) or not isinstance(config.get("GATEWAYS"), dict):
        return []
    try:
        in_flight = float(conf.setting("IN_FLIGHT_TIMEOUT"))
    except (TypeError, ValueError):
        return []  # E008 names it
    messages = []
    for alias, entry in config["GATEWAYS"].items():
        try:
            timeout = timeout_value((entry.get("OPTIONS") or {}).get("TIMEOUT")) if isinstance(entry, dict) else None
        except ValueError:
            continue  # E304 names it
        if timeout is None:
            continue
        longest = sum(timeout) if isinstance(timeout, tuple) else 2 * timeout
        if in_flight <= longest:
            messages.append(
                checks.Warning(
                    f'PGPAY["IN_FLIGHT_TIMEOUT"] = {in_flight:g} s is not longer than a call to {alias!r} may take '
                    f"({longest:g} s): reconciliation could fail an operation whose answer is still on its way.",
                    hint='Keep IN_FLIGHT_TIMEOUT (default 120) well above the gateways\' OPTIONS["TIMEOUT"].',
                    id="django_pgpay.W014",
                )
            )
    return messages


#: The most seconds a PGPAY duration may be: a later deadline overflows Python's dates.
MAX_SECONDS = 10 * 365 * 24 * 3600
#: PGPAY keys that are True or False: a string such as "False" (read from the environment) is true in Python.
BOOLEAN_SETTINGS = ("SANDBOX_ALLOW_WITHOUT_DEBUG", "CSV_BOM")
#: PGPAY keys that are a count of orders (or None).
COUNT_SETTINGS = ("BACKGROUND_EXPORT_ROWS", "BACKGROUND_INVOICES")


def _is_number(value, *, high) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= high


def _setting_value_messages(config: dict) -> list[checks.CheckMessage]:
    """Keys that are not settings (a typo is ignored in silence), true/false keys, counts, the task backend."""
    from . import conf

    messages = []
    for key in sorted(set(config) - set(conf.DEFAULTS), key=str):
        close = difflib.get_close_matches(str(key), sorted(conf.DEFAULTS), n=1)
        messages.append(
            checks.Error(
                f"PGPAY[{key!r}] is not a setting of django-pgpay: it would be ignored.",
                hint=f"Did you mean {close[0]!r}?" if close else f"The settings: {', '.join(sorted(conf.DEFAULTS))}.",
                id="django_pgpay.E009",
            )
        )
    for key in BOOLEAN_SETTINGS:
        if key in config and not isinstance(config[key], bool):
            messages.append(
                checks.Error(
                    f'PGPAY["{key}"] = {config[key]!r} must be True or False.',
                    hint="A value read from the environment is text, and any text but '' is true: convert it.",
                    id="django_pgpay.E010",
                )
            )
    for key in COUNT_SETTINGS:
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            messages.append(checks.Error(f'PGPAY["{key}"] = {value!r} must be a number of orders >= 0, or None.', id="django_pgpay.E011"))
    from .tasks import backend_error, process_delivery

    problem = backend_error(process_delivery)
    if problem:
        messages.append(
            checks.Error(
                f'PGPAY["TASK_BACKEND"] = {conf.setting("TASK_BACKEND")!r}: {problem}',
                hint="Name an alias of the TASKS setting; webhooks are processed inline meanwhile.",
                id="django_pgpay.E012",
            )
        )
    if not settings.USE_TZ:
        messages.append(
            checks.Error(
                "USE_TZ is False: django-pgpay stores and compares aware times (paid at, deadlines, the PG's times).",
                hint="Set USE_TZ = True (Django's default since 5.0).",
                id="django_pgpay.E013",
            )
        )
    return messages


@checks.register("django_pgpay", checks.Tags.models)
def check_order_models(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every concrete order model has a ledger model pointing at it, and a refund permission some model declares."""
    from .exceptions import ConfigurationError
    from .models import AbstractOrder
    from .permissions import refund_permission, undeclared_warnings

    messages = []
    for model in apps.get_models():
        if issubclass(model, AbstractOrder):
            try:
                model.get_transaction_model()
            except ConfigurationError as exc:
                messages.append(checks.Error(str(exc), obj=model, id="django_pgpay.E007"))
            messages += undeclared_warnings({f"{model.__name__}.get_refund_permission()": refund_permission(model)}, obj=model)
    return messages


@checks.register("django_pgpay")
def check_sqlite_transactions(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A SQLite database the orders are written to begins its transactions ``IMMEDIATE``.

    SQLite has no row locks: the payment steps' ``SELECT ... FOR UPDATE`` is a
    plain read there. In SQLite's default (deferred) mode two steps at once (a
    buyer's return confirming while the PG's webhook about the same payment is
    applied) each read, then both ask for the write lock, and SQLite answers
    one of them "database is locked" at once instead of letting it wait: a
    server error on the return page. ``IMMEDIATE`` takes the write lock when
    the transaction begins, so the second step waits (up to ``timeout``).
    """
    from django.db import router

    from .orders import order_models

    aliases = {router.db_for_write(model) for model in order_models()} or {"default"}
    return sqlite_transaction_warnings(settings.DATABASES, aliases)


def sqlite_transaction_warnings(databases: dict, aliases) -> list[checks.CheckMessage]:
    """:func:`check_sqlite_transactions` for the ``DATABASES``-shaped ``databases``, entries ``aliases``."""
    messages = []
    for alias in sorted(aliases):
        entry = databases.get(alias) or {}
        if not str(entry.get("ENGINE", "")).endswith("sqlite3"):
            continue
        mode = str((entry.get("OPTIONS") or {}).get("transaction_mode") or "DEFERRED").upper()
        if mode not in ("IMMEDIATE", "EXCLUSIVE"):
            messages.append(
                checks.Warning(
                    f"DATABASES[{alias!r}] is SQLite with {mode} transactions: two payment steps at once (the buyer's "
                    "return and the PG's webhook) can fail with 'database is locked'.",
                    hint='Add "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20} to it (Django 5.1+), '
                    "as the quick start does, or use PostgreSQL or MariaDB.",
                    id="django_pgpay.W011",
                )
            )
    return messages


@checks.register("django_pgpay")
def check_mysql_isolation(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A MySQL or MariaDB database the orders are written to runs at READ COMMITTED (Django's default there).

    A shop that sets ``OPTIONS["isolation_level"]`` to ``"repeatable read"``
    (the server's own default, which ``None`` keeps) gets InnoDB's gap locks:
    concurrent checkouts of new buyers deadlock on the orders' user index
    (error 1213, a 500 for all but one of them, measured in an attack review),
    and a plain read after a row lock in one payment step may see the
    transaction's older snapshot instead of what another step committed.
    """
    from django.db import router

    from .orders import order_models

    aliases = {router.db_for_write(model) for model in order_models()} or {"default"}
    return mysql_isolation_errors(settings.DATABASES, aliases)


#: An isolation level an ``init_command`` sets (``SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ``,
#: ``SET tx_isolation='REPEATABLE-READ'``, ``transaction_isolation``).
_INIT_ISOLATION = re.compile(
    r"(?:isolation\s+level\s+|(?:tx|transaction)_isolation\s*=\s*['\"]?)"
    r"(read[\s-]+committed|read[\s-]+uncommitted|repeatable[\s-]+read|serializable)",
    re.IGNORECASE,
)


def mysql_isolation_errors(databases: dict, aliases) -> list[checks.CheckMessage]:
    """:func:`check_mysql_isolation` for the ``DATABASES``-shaped ``databases``, entries ``aliases``."""
    messages = []
    for alias in sorted(aliases):
        entry = databases.get(alias) or {}
        if not str(entry.get("ENGINE", "")).endswith("mysql"):
            continue
        options = entry.get("OPTIONS") or {}
        level = options.get("isolation_level", "read committed")  # Django's MySQL backend's default
        # ... or set by the connection's own first statement (SET SESSION TRANSACTION ISOLATION LEVEL ...).
        found = _INIT_ISOLATION.search(str(options.get("init_command") or ""))
        if found:
            level = found.group(1).replace("-", " ")
        if str(level or "").lower() != "read committed":
            messages.append(
                checks.Error(
                    f"DATABASES[{alias!r}] is MySQL/MariaDB at isolation level {level or 'of the server (REPEATABLE READ)'!r}: "
                    "concurrent checkouts deadlock on InnoDB's gap locks (a server error), and a payment step may read "
                    "a snapshot older than what another step committed.",
                    hint='Remove "isolation_level" from its OPTIONS, or set it to "read committed" (Django\'s default).',
                    id="django_pgpay.E015",
                )
            )
    return messages


@checks.register("django_pgpay", checks.Tags.database)
def check_mysql_charset(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """A MySQL or MariaDB database the payments are written to stores text as ``utf8mb4``.

    A database (or table) created as ``utf8``/``utf8mb3``, as many were before
    MySQL 8, stores Hangul but not a 4-byte character: an emoji in a cancel
    reason, a buyer's name or a PG's webhook body fails its ``INSERT`` (error
    1366 in strict mode), a server error for the buyer and a webhook the PG
    retries in vain. A database check: ``migrate`` and ``check --database``
    run it.
    """
    from django.db import connections, router

    from .models import WebhookEvent
    from .orders import order_models

    models = [WebhookEvent]
    for model in order_models():
        models += [model, model.get_transaction_model()]
    tables: dict[str, set[str]] = {}
    for model in models:
        tables.setdefault(router.db_for_write(model), set()).add(model._meta.db_table)
    messages = []
    for alias in sorted(set(tables) & set(databases or ())):
        connection = connections[alias]
        if connection.vendor == "mysql":
            messages += mysql_charset_warnings(connection, sorted(tables[alias]))
    return messages


def mysql_charset_warnings(connection, tables) -> list[checks.CheckMessage]:
    """:func:`check_mysql_charset` for one MySQL/MariaDB ``connection`` and its payment ``tables``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@character_set_database")
        default = cursor.fetchone()[0]
        placeholders = ", ".join(["%s"] * len(tables))
        cursor.execute(
            "SELECT DISTINCT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            f"AND TABLE_NAME IN ({placeholders}) AND CHARACTER_SET_NAME IS NOT NULL AND CHARACTER_SET_NAME <> 'utf8mb4'",
            list(tables),
        )
        narrow = sorted(row[0] for row in cursor.fetchall())
    if default == "utf8mb4" and not narrow:
        return []
    where = f"tables {', '.join(narrow)}" if narrow else f"new tables (the database's default is {default})"
    name = connection.settings_dict.get("NAME")
    return [
        checks.Warning(
            f"DATABASES[{connection.alias!r}] stores the payments' text in a character set that cannot hold an emoji "
            f"({where}): a cancel reason, a buyer's name or a PG's webhook body with one fails to be saved.",
            hint=f"Convert to utf8mb4: ALTER DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, then "
            "ALTER TABLE <table> CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci for each table.",
            id="django_pgpay.W012",
        )
    ]


# --- PDF invoices --------------------------------------------------------------------

#: The library names WeasyPrint tries for HarfBuzz's subsetter, in its order
#: (weasyprint/text/ffi.py: ``harfbuzz_subset = _dlopen(ffi, 'libharfbuzz-subset-0',
#: 'harfbuzz-subset', ..., allow_fail=True)``, WeasyPrint 62-70).
HARFBUZZ_SUBSET_NAMES = (
    "libharfbuzz-subset-0", "harfbuzz-subset", "harfbuzz-subset-0.0", "libharfbuzz-subset.so.0",
    "libharfbuzz-subset.0.dylib", "libharfbuzz-subset-0.dll",
)  # fmt: skip
HARFBUZZ_NAMES = ("libharfbuzz-0", "harfbuzz", "harfbuzz-0.0", "libharfbuzz.so.0", "libharfbuzz.0.dylib", "libharfbuzz-0.dll")


def weasyprint_installed() -> bool:
    """WeasyPrint can be imported (the ``pdf`` extra): found without importing it."""
    import importlib.util

    return importlib.util.find_spec("weasyprint") is not None


def korean_fonts() -> list[str] | None:
    """Font files fontconfig offers for Korean (``fc-list :lang=ko``); None when fc-list cannot run."""
    import subprocess

    try:
        result = subprocess.run(["fc-list", ":lang=ko", "file"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return [line.strip().rstrip(":") for line in result.stdout.splitlines() if line.strip()]


def _dlopen_any(names) -> object | None:
    import ctypes

    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def harfbuzz_subset_available() -> bool:
    """Would WeasyPrint subset fonts with HarfBuzz (fast) rather than fontTools (slow)?

    Mirrors WeasyPrint's own decision without importing it (an import costs
    about a second and loads Pango): ``weasyprint/pdf/fonts.py`` ``Font.subset``
    uses HarfBuzz when ``harfbuzz_subset and harfbuzz.hb_version_atleast(4, 1, 0)``,
    where ``harfbuzz_subset`` is whatever ``weasyprint/text/ffi.py`` could dlopen
    from :data:`HARFBUZZ_SUBSET_NAMES`; otherwise it logs a warning and falls back
    to fontTools. When WeasyPrint is already imported, its own answer is used.
    """
    import sys

    ffi = sys.modules.get("weasyprint.text.ffi")
    if ffi is not None:
        return bool(ffi.harfbuzz_subset) and bool(ffi.harfbuzz.hb_version_atleast(4, 1, 0))
    if _dlopen_any(HARFBUZZ_SUBSET_NAMES) is None:
        return False
    harfbuzz = _dlopen_any(HARFBUZZ_NAMES)
    return bool(harfbuzz is not None and harfbuzz.hb_version_atleast(4, 1, 0))


@checks.register("django_pgpay")
def check_invoices(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """PDF invoices: the ``INVOICE`` setting, a Korean font, and HarfBuzz's subsetter.

    The font and HarfBuzz checks run only when WeasyPrint is installed (the
    ``pdf`` extra): a project without it does not render invoices. Silence them
    with ``SILENCED_SYSTEM_CHECKS = ["django_pgpay.W401", "django_pgpay.W402"]``.
    """
    messages: list[checks.CheckMessage] = []
    config = getattr(settings, "PGPAY", None)
    invoice = config.get("INVOICE", {}) if isinstance(config, dict) else {}
    if not isinstance(invoice, dict):
        return [checks.Error('PGPAY["INVOICE"] must be a dict.', id="django_pgpay.E401")]
    from .exceptions import ConfigurationError
    from .invoices import INVOICE_DEFAULTS, vat_currencies, vat_rate

    unknown = sorted(set(invoice) - set(INVOICE_DEFAULTS))
    if unknown:
        messages.append(
            checks.Error(
                f'PGPAY["INVOICE"] has unknown keys: {", ".join(unknown)}.',
                hint=f"Known keys: {', '.join(INVOICE_DEFAULTS)}.",
                id="django_pgpay.E401",
            )
        )
    for read in (vat_rate, vat_currencies):
        try:
            read({**INVOICE_DEFAULTS, **invoice})
        except ConfigurationError as exc:
            messages.append(checks.Error(str(exc), id="django_pgpay.E402"))
    if not weasyprint_installed():
        return messages
    fonts = korean_fonts()
    if not fonts:
        messages.append(
            checks.Warning(
                "No Korean font found by fontconfig (fc-list :lang=ko"
                + (" could not run" if fonts is None else " lists none")
                + "): Hangul on PDF invoices would print as empty boxes.",
                hint="Install one, e.g. Debian/Ubuntu: apt-get install fonts-nanum (or fonts-noto-cjk).",
                id="django_pgpay.W401",
            )
        )
    if not harfbuzz_subset_available():
        messages.append(
            checks.Warning(
                "WeasyPrint would subset fonts with fontTools, not HarfBuzz: each PDF invoice "
                "with a Korean font takes several times longer.",
                hint="Install HarfBuzz's subsetter >= 4.1, e.g. Debian/Ubuntu: apt-get install libharfbuzz-subset0.",
                id="django_pgpay.W402",
            )
        )
    return messages


@checks.register("django_pgpay")
def check_invoice_seller(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``django_pgpay.W403``: the seller's details a Korean receipt needs are missing.

    Runs only when WeasyPrint is installed (the project can render invoices).
    An invoice without them prints no seller block at all.
    """
    if not weasyprint_installed():
        return []
    config = getattr(settings, "PGPAY", None)
    invoice = config.get("INVOICE", {}) if isinstance(config, dict) else {}
    if not isinstance(invoice, dict):
        return []  # E401 says so
    from .invoices import SELLER_KEYS

    missing = [key for key in SELLER_KEYS if not str(invoice.get(key) or "").strip()]
    if not missing:
        return []
    return [
        checks.Warning(
            f'PGPAY["INVOICE"] lacks the seller\'s {", ".join(missing)}: PDF invoices would not say who sold.',
            hint="A Korean receipt names the shop (SHOP_NAME), its business registration number "
            "(BUSINESS_NUMBER, 사업자등록번호), its representative (CEO) and its ADDRESS. "
            'Silence with SILENCED_SYSTEM_CHECKS = ["django_pgpay.W403"] if you issue no invoices.',
            id="django_pgpay.W403",
        )
    ]
