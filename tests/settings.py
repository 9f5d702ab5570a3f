"""Settings for django-pgpay's own test suite.

The database is chosen by ``PGPAY_TEST_DB`` (``sqlite``, the default, ``postgres``
or ``mariadb``); ``PGPAY_TEST_DB_NAME`` names it, so several checkouts can run
their suites against one server at the same time.
"""

import importlib.util
import os
import tempfile

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "Asia/Seoul"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "Korean")]
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Files the tests write through the default storage (background export jobs), never in the checkout.
MEDIA_ROOT = os.environ.get("PGPAY_TEST_MEDIA_ROOT") or tempfile.mkdtemp(prefix="pgpay-test-media-")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the live server serves django_pgpay/pgpay.css
    "django_pgpay",
    "tests.testapp",
    "django_pgpay.sandbox",
]
# The database task backend (its tables), for the tests in which a real worker runs tasks
# (tests/test_worker.py); TASKS is not set: everything else runs inline.
if importlib.util.find_spec("django_tasks_db"):
    INSTALLED_APPS.append("django_tasks_db")
# RQ on Redis (tests/test_rq.py starts its own redis-server and rqworker).
if importlib.util.find_spec("django_tasks_rq"):
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    RQ_QUEUES = {"default": {"URL": os.environ.get("PGPAY_TEST_REDIS_URL", "redis://127.0.0.1:8106/0")}}

# Celery on Redis (tests/test_celery.py starts its own redis-server and celery worker; read by
# tests/celery_app.py, the app both processes use).
CELERY_BROKER_URL = os.environ.get("PGPAY_TEST_CELERY_URL", "redis://127.0.0.1:8107/0")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = False

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_db = os.environ.get("PGPAY_TEST_DB", "sqlite")
_name = os.environ.get("PGPAY_TEST_DB_NAME", "pgpay")
if _db == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _name,
            "USER": os.environ.get("PGPAY_PG_USER", "postgres"),
            "HOST": os.environ.get("PGPAY_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPAY_PG_PORT", "5432"),
            "TEST": {"NAME": f"test_{_name}"},
        }
    }
elif _db == "mariadb":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _name,
            "USER": os.environ.get("PGPAY_MYSQL_USER", "root"),
            "HOST": os.environ.get("PGPAY_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPAY_MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
            "TEST": {"NAME": f"test_{_name}", "CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    }
elif _db == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("PGPAY_SQLITE_PATH", ":memory:"),
            # BEGIN IMMEDIATE: SQLite's stand-in for a row lock (see docs/concurrency).
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
else:  # pragma: no cover - a typo in CI configuration
    raise RuntimeError(f"PGPAY_TEST_DB={_db!r}: expected sqlite, postgres or mariadb")

PGPAY = {
    "DEFAULT_GATEWAY": "fake",
    "CURRENCY": "KRW",
    "GATEWAYS": {
        "fake": {"CLASS": "django_pgpay.gateways.fake.FakeGateway", "OPTIONS": {}},
    },
    # The test runner forces DEBUG = False; the sandbox app is tested here.
    "SANDBOX_ALLOW_WITHOUT_DEBUG": True,
}

# The payment sandbox (django_pgpay.sandbox). Made-up keys; tests that need
# webhooks set WEBHOOK_URL to their live server. Deliveries run only when a
# test asks (no background thread), so webhook tests are deterministic.
PGPAY_SANDBOX = {
    "TOSS": {
        "CLIENT_KEYS": ["test_ck_sandboxTESTS0000000000"],
        "SECRET_KEYS": ["test_sk_sandboxTESTS0000000000"],
        "WEBHOOK_URL": "",
    },
    # PortOne V1 and V2 (made-up keys; the merchant code and store id are the gateway tests').
    "PORTONE": {
        "IMP_KEYS": ["test_imp_key_sandboxTESTS"],
        "IMP_SECRETS": ["test_imp_secret_sandboxTESTS00000000000000"],
        "MERCHANT_CODES": ["imp00000000"],
        "V2_API_SECRETS": ["test_v2_secret_sandboxTESTS00000000000000"],
        "STORE_IDS": ["store-00000000-0000-4000-8000-000000000000"],
        "V2_WEBHOOK_SECRET": "whsec_cGdwYXktdGVzdHMtb25seS13ZWJob29rLXNlY3JldCE=",
        "WEBHOOK_URL": "",
        "V2_WEBHOOK_URL": "",
    },
    "BOOTPAY": {
        "CLIENT_KEYS": ["test_bootpay_ck_sandboxTESTS0000"],
        "SECRET_KEYS": ["test_bootpay_sk_sandboxTESTS0000"],
        "APPLICATION_IDS": ["test_bootpay_app_sandboxTESTS00"],
        "PRIVATE_KEYS": ["test_bootpay_pk_sandboxTESTS0000"],
        "WEB_APPLICATION_IDS": ["test_bootpay_web_sandboxTESTS00"],
        "WEBHOOK_URL": "",
    },
    "STRIPE": {
        "SECRET_KEYS": ["sk_test_sandboxTESTS0000000000"],
        "WEBHOOK_SECRET": "whsec_sandboxTESTS0000000000",
        "WEBHOOK_URL": "",
    },
    "WEBHOOKS": {"DELIVERY": "manual"},
    # docs: minipg sandbox
    # Mini PG, the test-only PG of docs/adding_a_pg.rst (tests/minipg/).
    "MINIPG": {"API_KEYS": ["test_mini_sandboxTESTS0000"], "WEBHOOK_SECRET": "test_mini_whsec_TESTS", "WEBHOOK_URL": ""},
}
#: The sandbox's own emulators plus the test-only Mini PG (django_pgpay.sandbox.registry).
PGPAY_SANDBOX_EMULATORS = {"minipg": "tests.minipg.sandbox.MiniSandbox"}
# docs: end

STATIC_URL = "/static/"

# Fast hashing for the test users (PBKDF2 costs ~0.3 s per user).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
