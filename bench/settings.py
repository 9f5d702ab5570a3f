"""Settings of the flash-sale benchmark's server: the example project, plus the tutorial's views and a PG call log.

Run only by ``bench/flash_sale.py`` (under gunicorn, on PostgreSQL). The
example project's settings read the database, the site URL and the sandbox's
address from the environment the benchmark sets.
"""

import os

from example_project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.tutorial"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
#: Every call to the sandbox's Toss API is written to $BENCH_PG_LOG_DIR (one file per process).
MIDDLEWARE = ["bench.pg_log.PgCallLog", *MIDDLEWARE]  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
CONN_MAX_AGE = 0
BENCH_PG_LOG_DIR = os.environ.get("BENCH_PG_LOG_DIR", "")
