"""Settings of the flash-sale benchmark's server: the example project, plus the tutorial's views and a PG call log.

Run only by ``bench/flash_sale.py`` (under gunicorn, on PostgreSQL). The
example project's settings read the database, the site URL and the sandbox's
address from the environment the benchmark sets.
"""

import os

from example_project.settings import *  # noqa: F403

# The example project refuses its sandbox without DEBUG (it is a development setup), so the
# benchmarks start it with DJANGO_DEBUG=1; measured servers run with DEBUG off, as in
# production, and the sandbox is allowed without it here, in this settings module only.
DEBUG = False
PGPAY = {**PGPAY, "SANDBOX_ALLOW_WITHOUT_DEBUG": True}  # noqa: F405

INSTALLED_APPS = [*INSTALLED_APPS, "bench.tutorial"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
#: Every call to the sandbox's Toss API is written to $BENCH_PG_LOG_DIR (one file per process).
#: With $BENCH_QUERY_LOG_DIR (flash_sale.py --verbose), every request's SQL statements are counted there.
MIDDLEWARE = ["bench.pg_log.PgCallLog", "bench.query_log.QueryLog", *MIDDLEWARE]  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# Persistent database connections, as a shop runs gunicorn in production (Django's default, 0,
# opens one per request). This is per database: a top-level CONN_MAX_AGE (as this file had
# until 6 December 2026) does nothing. Both apps of the benchmark run on these servers.
DATABASES["default"] = {**DATABASES["default"], "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}  # noqa: F405
BENCH_PG_LOG_DIR = os.environ.get("BENCH_PG_LOG_DIR", "")

# Task workers (bench/scale.py): django-tasks-db's tables always; TASKS only where BENCH_TASKS=db
# (the queued shop and its workers), so the other shop processes webhooks inline.
import importlib.util  # noqa: E402

if importlib.util.find_spec("django_tasks_db"):
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
if os.environ.get("BENCH_TASKS") == "db":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
