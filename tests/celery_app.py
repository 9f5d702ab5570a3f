"""The Celery app of the worker that tests/test_celery.py starts (``celery -A tests.celery_app worker``).

Set up as Celery's Django guide does it: configured from Django's settings
(``CELERY_*``, tests/settings.py), tasks found in the installed apps. The
tasks of ``django_pgpay.tasks`` register themselves with this app through
django-tasks-celery's backend (``TASKS``, with ``OPTIONS["CELERY_APP"]``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("pgpay_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
