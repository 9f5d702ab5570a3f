"""Settings for the django-pgpay example shop.

A development setup: DEBUG on, SQLite next to manage.py, the payment sandbox
serving the protocols of Toss Payments, Stripe, PortOne (V1, V2) and Bootpay
on this same server. Run it with ``make demo``
from the repository root.

Every value that differs between machines comes from the environment, with a
default that works offline (see docs/example.rst, "Settings"):

``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG`` (``1``/``0``), ``DJANGO_LANGUAGE_CODE`` (``ko``)
    Django's own.
``EXAMPLE_SITE_URL``
    This server's own address (default ``http://127.0.0.1:8000``). The Toss
    gateway calls the sandbox through it, so tests that serve on another port
    set it.
``DATABASE_URL``
    ``sqlite:////absolute/path.sqlite3`` (default: ``db.sqlite3`` next to
    manage.py) or ``postgres://user:password@host:port/name``.
``EXAMPLE_SANDBOX`` (``1``/``0``)
    Install the payment sandbox (default: when DEBUG is on). The sandbox
    never runs here without DEBUG: ``DJANGO_DEBUG=0 EXAMPLE_SANDBOX=1`` is refused.
``PGPAY_DEFAULT_GATEWAY``, ``PGPAY_READY_TIMEOUT``
    The PG new orders use (default ``toss``); seconds an unpaid order holds its
    seat (default 1800).
``TOSS_CLIENT_KEY``, ``TOSS_SECRET_KEY``
    Unset: the sandbox's made-up keys, and the API and SDK URLs point at the
    sandbox. Set to your test keys from Toss's developer centre: the shop talks
    to Toss's real test environment. ``TOSS_API_BASE``, ``TOSS_JS_SDK_URL`` and
    ``TOSS_TIMEOUT`` override the URLs and the read timeout.
``STRIPE_SECRET_KEY`` (+ ``STRIPE_WEBHOOK_SECRET``);
``PORTONE_IMP_KEY`` + ``PORTONE_IMP_SECRET`` + ``PORTONE_MERCHANT_CODE`` + ``PORTONE_CHANNEL_KEY``;
``PORTONE_V2_API_SECRET`` + ``PORTONE_STORE_ID`` + ``PORTONE_V2_CHANNEL_KEY`` (+ ``PORTONE_V2_WEBHOOK_SECRET``);
``BOOTPAY_CLIENT_KEY`` + ``BOOTPAY_SECRET_KEY``
    Unset: that PG runs on the sandbox with made-up keys. Set: its real test
    environment (``<PG>_API_BASE``, ``<PG>_JS_SDK_URL``, ``<PG>_TIMEOUT`` override
    as for Toss). ``PORTONE_VERSIONS`` (``v1,v2``) picks the PortOne APIs offered.
    Every PG is a choice in both shops but Stripe, in the cart shop only
    (``GATEWAY_SHOPS``).
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """An environment variable, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or default


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "")
    if not value:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


# --- Django -------------------------------------------------------------------------

# Development only. Set DJANGO_SECRET_KEY to anything long and random to keep
# sessions across restarts with your own key; never deploy with the fallback.
SECRET_KEY = env("DJANGO_SECRET_KEY", "example-project-insecure-development-key")
DEBUG = env_flag("DJANGO_DEBUG", True)

SITE_URL = env("EXAMPLE_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
_site_host = urlsplit(SITE_URL).hostname or "127.0.0.1"
ALLOWED_HOSTS = sorted({"127.0.0.1", "localhost", "[::1]", _site_host})

#: The payment sandbox (django_pgpay.sandbox) on this server: on with DEBUG.
SANDBOX = env_flag("EXAMPLE_SANDBOX", DEBUG)
if SANDBOX and not DEBUG:
    # The sandbox's own rule (a system check, and 404s): development only. The
    # example project never sets the setting that would let it run regardless.
    raise ImproperlyConfigured("EXAMPLE_SANDBOX=1 needs DJANGO_DEBUG=1: the payment sandbox runs only in development.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_pgpay",
    *(["django_pgpay.sandbox"] if SANDBOX else []),
    "restaurants",
    "shop",
    "example_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Searched before the apps' folders: the shop's layout also wraps
        # django-pgpay's own pages (templates/django_pgpay/base.html).
        "DIRS": [BASE_DIR / "example_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "example_project.context.shop",
            ],
        },
    },
]

WSGI_APPLICATION = "example_project.wsgi.application"


def database(url: str) -> dict:
    """Django's DATABASES entry for ``sqlite:///path`` or ``postgres://user:pw@host:port/name``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path[1:] if path.startswith("//") else path or BASE_DIR / "db.sqlite3",
            # BEGIN IMMEDIATE: SQLite's stand-in for the row locks payments take.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise ImproperlyConfigured(f"DATABASE_URL: use sqlite:////path or postgres://..., not {parts.scheme!r}")


DATABASES = {"default": database(env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Korean by default; LocaleMiddleware follows the browser, the header switches.
LANGUAGE_CODE = env("DJANGO_LANGUAGE_CODE", "ko")
LANGUAGES = [("ko", "한국어"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Seoul"
# Times on the 24-hour clock in both languages (Django's Korean default is "오후 8:00").
FORMAT_MODULE_PATH = ["example_project.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
MEDIA_ROOT = BASE_DIR / "media"
MEDIA_URL = "media/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# What happens to payments, in the server's console (confirm, cancel, webhooks).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s", "datefmt": "%H:%M:%S"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "short"}},
    "loggers": {"django_pgpay": {"handlers": ["console"], "level": env("PGPAY_LOG_LEVEL", "INFO")}},
}

# --- payments -----------------------------------------------------------------------
#
# One entry per PG in PGPAY["GATEWAYS"], keyed by an alias of our choice; each
# shop offers every entry as a choice. Keys come from the environment only.
# A PG whose sandbox module exists defaults to the sandbox on this server, with
# made-up keys: nothing leaves the machine. Giving the PG's real test keys
# switches that PG to its real test environment; nothing else changes.

#: Made-up keys the sandbox accepts (never a real PG's keys).
TOSS_SANDBOX_CLIENT_KEY = "test_ck_sandbox_example_shop"
TOSS_SANDBOX_SECRET_KEY = "test_sk_sandbox_example_shop"

GATEWAYS: dict = {}
#: Aliases of the gateways that talk to the sandbox (shown as such in the shops).
SANDBOX_GATEWAYS: list = []


def toss_gateway() -> dict:
    """Toss Payments: the sandbox's made-up keys, or yours from TOSS_CLIENT_KEY / TOSS_SECRET_KEY."""
    if bool(env("TOSS_CLIENT_KEY")) != bool(env("TOSS_SECRET_KEY")):
        raise ImproperlyConfigured("Set both TOSS_CLIENT_KEY and TOSS_SECRET_KEY (a pair of one Toss account), or neither for the sandbox.")
    client_key = env("TOSS_CLIENT_KEY", TOSS_SANDBOX_CLIENT_KEY)
    secret_key = env("TOSS_SECRET_KEY", TOSS_SANDBOX_SECRET_KEY)
    on_sandbox = (client_key, secret_key) == (TOSS_SANDBOX_CLIENT_KEY, TOSS_SANDBOX_SECRET_KEY)
    if on_sandbox and not SANDBOX:
        raise ImproperlyConfigured(
            "The sandbox is off (EXAMPLE_SANDBOX=0): set TOSS_CLIENT_KEY and TOSS_SECRET_KEY to your Toss test keys."
        )
    options = {"CLIENT_KEY": client_key, "SECRET_KEY": secret_key}
    api_base = env("TOSS_API_BASE", f"{SITE_URL}/sandbox/toss" if on_sandbox else "")
    sdk_url = env("TOSS_JS_SDK_URL", f"{SITE_URL}/sandbox/toss/js/v2/standard" if on_sandbox else "")
    if api_base:  # unset: Toss's own https://api.tosspayments.com
        options["API_BASE"] = api_base
    if sdk_url:  # unset: Toss's own https://js.tosspayments.com/v2/standard
        options["JS_SDK_URL"] = sdk_url
    if env("TOSS_TIMEOUT"):
        options["TIMEOUT"] = (3.05, float(env("TOSS_TIMEOUT")))
    if on_sandbox:
        SANDBOX_GATEWAYS.append("toss")
    return {"CLASS": "django_pgpay.gateways.toss.TossGateway", "OPTIONS": options}


GATEWAYS["toss"] = toss_gateway()


def sandboxed_gateway(
    alias: str, gateway_class: str, *, keys: dict, sandbox: dict, urls: dict, prefix: str, optional=None, options=None
) -> dict | None:
    """A PG on the sandbox with made-up keys, or on its real test environment with yours.

    ``keys`` maps each required OPTION to its environment variable, ``optional``
    the OPTIONS that may be left out (a webhook secret); ``sandbox`` maps both
    to the made-up values the sandbox accepts; ``urls`` the OPTIONS
    (``API_BASE``, ``JS_SDK_URL``) that point at the sandbox on this server.
    No required variable set: the sandbox (or nothing when the sandbox is off).
    All set: the PG's own URLs unless ``<prefix>_API_BASE`` /
    ``<prefix>_JS_SDK_URL`` say otherwise. Some set: an error naming the rest.
    """
    optional = optional or {}
    given = {option: env(name) for option, name in keys.items() if env(name)}
    if given and len(given) != len(keys):
        missing = ", ".join(name for option, name in keys.items() if option not in given)
        raise ImproperlyConfigured(f"{alias}: set {missing} as well (one account's keys), or none of them for the sandbox.")
    on_sandbox = not given
    if on_sandbox and not SANDBOX:
        return None  # the sandbox is off and no keys are given: this PG is not offered
    given.update({option: env(name) for option, name in optional.items() if env(name)})
    entry_options = dict(sandbox if on_sandbox else given)
    entry_options.update(options or {})
    for option, sandbox_url in urls.items():
        value = env(f"{prefix}_{option}", sandbox_url if on_sandbox else "")
        if value:  # unset: the PG's own URL (the gateway's default)
            entry_options[option] = value
    if env(f"{prefix}_TIMEOUT"):
        entry_options["TIMEOUT"] = (3.05, float(env(f"{prefix}_TIMEOUT")))
    if on_sandbox:
        SANDBOX_GATEWAYS.append(alias)
    return {"CLASS": gateway_class, "OPTIONS": entry_options}


#: Made-up keys of the other PGs' sandboxes (shapes of the real ones, never real keys).
SANDBOX_KEYS = {
    "STRIPE_SECRET_KEY": "sk_test_sandbox_example_shop",
    "STRIPE_WEBHOOK_SECRET": "whsec_sandbox_example_shop",
    "PORTONE_IMP_KEY": "test_imp_key_example_shop",
    "PORTONE_IMP_SECRET": "test_imp_secret_example_shop_000000000000",
    "PORTONE_MERCHANT_CODE": "imp00000000",
    "PORTONE_CHANNEL_KEY": "channel-key-00000000-0000-4000-8000-000000000000",
    "PORTONE_V2_API_SECRET": "test_v2_secret_example_shop_0000000000000",
    "PORTONE_STORE_ID": "store-00000000-0000-4000-8000-000000000000",
    # Standard Webhooks' secret: "whsec_" + base64 of the made-up key bytes.
    "PORTONE_V2_WEBHOOK_SECRET": "whsec_ZXhhbXBsZS1zaG9wLXNhbmRib3gtc2VjcmV0LTAwMDA=",
    "BOOTPAY_CLIENT_KEY": "test_bootpay_ck_example_shop0000",
    "BOOTPAY_SECRET_KEY": "test_bootpay_sk_example_shop0000",
}
_sandbox = f"{SITE_URL}/sandbox"

#: Which shop offers which PG ("restaurants", "shop"); an alias not named here is offered by both.
#: Stripe takes cards from abroad for the cart shop (seed 002), not deposits for a table.
GATEWAY_SHOPS = {"stripe": ["shop"]}

# Stripe Checkout (hosted page): STRIPE_SECRET_KEY (sk_test_...) and the
# webhook endpoint's STRIPE_WEBHOOK_SECRET (whsec_...).
GATEWAYS["stripe"] = sandboxed_gateway(
    "stripe",
    "django_pgpay.gateways.stripe.StripeGateway",
    keys={"SECRET_KEY": "STRIPE_SECRET_KEY"},
    optional={"WEBHOOK_SECRETS": "STRIPE_WEBHOOK_SECRET"},
    sandbox={"SECRET_KEY": SANDBOX_KEYS["STRIPE_SECRET_KEY"], "WEBHOOK_SECRETS": SANDBOX_KEYS["STRIPE_WEBHOOK_SECRET"]},
    urls={"API_BASE": f"{_sandbox}/stripe"},
    prefix="STRIPE",
)
# PortOne V1 (iamport): the REST key pair, the merchant code (imp...) and a channel key.
GATEWAYS["portone"] = sandboxed_gateway(
    "portone",
    "django_pgpay.gateways.portone.PortOneV1Gateway",
    keys={
        "IMP_KEY": "PORTONE_IMP_KEY",
        "IMP_SECRET": "PORTONE_IMP_SECRET",
        "MERCHANT_CODE": "PORTONE_MERCHANT_CODE",
        "CHANNEL_KEY": "PORTONE_CHANNEL_KEY",
    },
    sandbox={
        "IMP_KEY": SANDBOX_KEYS["PORTONE_IMP_KEY"],
        "IMP_SECRET": SANDBOX_KEYS["PORTONE_IMP_SECRET"],
        "MERCHANT_CODE": SANDBOX_KEYS["PORTONE_MERCHANT_CODE"],
        "CHANNEL_KEY": SANDBOX_KEYS["PORTONE_CHANNEL_KEY"],
    },
    urls={"API_BASE": f"{_sandbox}/portone", "JS_SDK_URL": f"{_sandbox}/portone/v1/iamport.js"},
    prefix="PORTONE",
    # Payments on PortOne's test channels may pay orders: development only.
    options={"INCLUDE_SANDBOX": DEBUG or SANDBOX},
)
# PortOne V2: the V2 API secret, the store id, a channel key and the webhook secret.
GATEWAYS["portone-v2"] = sandboxed_gateway(
    "portone-v2",
    "django_pgpay.gateways.portone.PortOneV2Gateway",
    keys={
        "API_SECRET": "PORTONE_V2_API_SECRET",
        "STORE_ID": "PORTONE_STORE_ID",
        "CHANNEL_KEY": "PORTONE_V2_CHANNEL_KEY",
    },
    optional={"WEBHOOK_SECRETS": "PORTONE_V2_WEBHOOK_SECRET"},
    sandbox={
        "API_SECRET": SANDBOX_KEYS["PORTONE_V2_API_SECRET"],
        "STORE_ID": SANDBOX_KEYS["PORTONE_STORE_ID"],
        "CHANNEL_KEY": SANDBOX_KEYS["PORTONE_CHANNEL_KEY"],
        "WEBHOOK_SECRETS": SANDBOX_KEYS["PORTONE_V2_WEBHOOK_SECRET"],
    },
    urls={"API_BASE": f"{_sandbox}/portone-v2", "JS_SDK_URL": f"{_sandbox}/portone-v2/v2/browser-sdk.js"},
    prefix="PORTONE_V2",
    options={"INCLUDE_SANDBOX": DEBUG or SANDBOX},
)
# Bootpay (REST v2): the client key and secret key pair.
GATEWAYS["bootpay"] = sandboxed_gateway(
    "bootpay",
    "django_pgpay.gateways.bootpay.BootpayGateway",
    keys={"CLIENT_KEY": "BOOTPAY_CLIENT_KEY", "SECRET_KEY": "BOOTPAY_SECRET_KEY"},
    sandbox={"CLIENT_KEY": SANDBOX_KEYS["BOOTPAY_CLIENT_KEY"], "SECRET_KEY": SANDBOX_KEYS["BOOTPAY_SECRET_KEY"]},
    urls={"API_BASE": f"{_sandbox}/bootpay/v2", "JS_SDK_URL": f"{_sandbox}/bootpay/js/bootpay-5.1.4.min.js"},
    prefix="BOOTPAY",
)
#: PortOne: V1 is offered; V2 too, or instead with PORTONE_VERSIONS=v2 (or "v1").
_portone_versions = {v.strip().lower() for v in env("PORTONE_VERSIONS", "v1,v2").split(",")}
for _alias, _version in (("portone", "v1"), ("portone-v2", "v2")):
    if _version not in _portone_versions:
        GATEWAYS[_alias] = None
GATEWAYS = {alias: entry for alias, entry in GATEWAYS.items() if entry is not None}
SANDBOX_GATEWAYS = [alias for alias in SANDBOX_GATEWAYS if alias in GATEWAYS]

PGPAY = {
    "DEFAULT_GATEWAY": env("PGPAY_DEFAULT_GATEWAY", "toss"),
    "CURRENCY": "KRW",
    "GATEWAYS": GATEWAYS,
    "READY_TIMEOUT": int(env("PGPAY_READY_TIMEOUT", "1800")),
    # The seller's details printed on PDF invoices (made-up for the demo).
    "INVOICE": {
        "SHOP_NAME": "한상마켓 (Hansang Market)",
        "BUSINESS_NUMBER": "000-00-00000",
        "CEO": "홍길동",
        "ADDRESS": "서울특별시 중구 세종대로 110",
        "TEL": "02-000-0000",
        "EMAIL": "shop@example.com",
    },
}

# The sandbox: accepts only its made-up keys, posts its webhooks to the shop's
# webhook URL on the host it was called on, and delivers them from a
# background thread of this server (so they arrive as they would from Toss).
PGPAY_SANDBOX = {
    "TOSS": {
        "CLIENT_KEYS": [TOSS_SANDBOX_CLIENT_KEY],
        "SECRET_KEYS": [TOSS_SANDBOX_SECRET_KEY],
        "WEBHOOK_URL": "/pay/toss/webhook/",
    },
    "STRIPE": {
        "SECRET_KEYS": [SANDBOX_KEYS["STRIPE_SECRET_KEY"]],
        "WEBHOOK_SECRET": SANDBOX_KEYS["STRIPE_WEBHOOK_SECRET"],
        "WEBHOOK_URL": "/pay/stripe/webhook/",
    },
    "PORTONE": {
        "IMP_KEYS": [SANDBOX_KEYS["PORTONE_IMP_KEY"]],
        "IMP_SECRETS": [SANDBOX_KEYS["PORTONE_IMP_SECRET"]],
        "MERCHANT_CODES": [SANDBOX_KEYS["PORTONE_MERCHANT_CODE"]],
        "V2_API_SECRETS": [SANDBOX_KEYS["PORTONE_V2_API_SECRET"]],
        "STORE_IDS": [SANDBOX_KEYS["PORTONE_STORE_ID"]],
        "V2_WEBHOOK_SECRET": SANDBOX_KEYS["PORTONE_V2_WEBHOOK_SECRET"],
        # The console's webhook URLs (each payment also carries its own notice URL).
        "WEBHOOK_URL": "/pay/portone/webhook/",
        "V2_WEBHOOK_URL": "/pay/portone-v2/webhook/",
    },
    "BOOTPAY": {
        "CLIENT_KEYS": [SANDBOX_KEYS["BOOTPAY_CLIENT_KEY"]],
        "SECRET_KEYS": [SANDBOX_KEYS["BOOTPAY_SECRET_KEY"]],
        "WEBHOOK_URL": "/pay/bootpay/webhook/",
    },
    "WEBHOOKS": {"DELIVERY": env("SANDBOX_WEBHOOK_DELIVERY", "thread")},
    "SITE_URL": SITE_URL,
}
