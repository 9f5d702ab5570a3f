"""Settings of a task worker started by a test (tests/test_worker.py): the suite's, on the test's database.

The test passes what its own process uses: the database (``PGPAY_WORKER_DB_NAME``,
the test database, not the one it is named after), ``PGPAY`` as JSON
(``PGPAY_WORKER_PGPAY``: the gateway pointed at the live server's sandbox) and
``TASKS`` as JSON (``PGPAY_WORKER_TASKS``).
"""

import json
import os

from tests.settings import *  # noqa: F403

DATABASES["default"]["NAME"] = os.environ["PGPAY_WORKER_DB_NAME"]  # noqa: F405
PGPAY = json.loads(os.environ["PGPAY_WORKER_PGPAY"])
TASKS = json.loads(os.environ["PGPAY_WORKER_TASKS"])
