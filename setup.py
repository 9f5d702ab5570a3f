"""Packaging for django-pgpay.

The version lives in ``django_pgpay/__init__.py`` and is read here with a regex,
so building never imports the package (or Django).
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version():
    text = (HERE / "django_pgpay" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if not match:
        raise RuntimeError("__version__ not found in django_pgpay/__init__.py")
    return match.group(1)


TEST_REQUIRES = [
    "pytest>=8",
    "pytest-django>=4.9",
    "pytest-xdist>=3.6",
    "responses>=0.25",
    "hypothesis>=6.100",
    "time-machine>=2.14",
    "pypdf>=5",
    "pytest-playwright>=0.5",
    "playwright>=1.45",
    "stripe>=10",
    "bootpay-backend>=2.9",
    "portone-server-sdk>=0.10",
    "jsonschema>=4.20",
    "psycopg[binary]>=3.1.8",
    "tqdm>=4.66",
    "gunicorn>=22",
    "weasyprint>=62",
    # Task backends the tests run real workers of (tests/test_worker.py, tests/test_rq.py);
    # django-tasks is the Tasks framework on Django 5.2 and the base of django-tasks-rq.
    "django-tasks>=0.12",
    "django-tasks-db>=0.13",
    "django-tasks-rq>=0.12",
]

setup(
    name="django-pgpay",
    version=read_version(),
    description=("Take and refund payments through Korean PGs (Toss Payments, PortOne, Bootpay) and Stripe from a Django shop."),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="django-pgpay contributors",
    license="MIT",
    packages=find_packages(include=["django_pgpay", "django_pgpay.*"]),
    include_package_data=True,
    package_data={
        "django_pgpay": [
            "templates/**/*",
            "static/**/*",
            "*/templates/**/*",
            "*/static/**/*",
            "locale/*/LC_MESSAGES/*.mo",
            "locale/*/LC_MESSAGES/*.po",
            "migrations/*.py",
            "*/migrations/*.py",
            "py.typed",
        ],
    },
    exclude_package_data={"": ["__pycache__/*", "*.py[co]"]},
    zip_safe=False,
    python_requires=">=3.10",
    install_requires=[
        "Django>=5.2",
        "requests>=2.31",
        "django-model-utils>=5.0",
        "tqdm>=4.66",
    ],
    extras_require={
        "pdf": ["weasyprint>=62", "pypdf>=5"],
        "mysql": ["mysqlclient>=2.2.1"],
        "tasks": ["django-tasks-db>=0.13"],
        "docs": ["sphinx>=7.2", "furo>=2024.1.29", "myst-parser>=3"],
        "test": TEST_REQUIRES,
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Environment :: Web Environment",
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.1",
        "Intended Audience :: Developers",
        "Natural Language :: English",
        "Natural Language :: Korean",
        "Operating System :: OS Independent",
        "Programming Language :: Python",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Internet :: WWW/HTTP",
        "Topic :: Office/Business :: Financial :: Point-Of-Sale",
    ],
)
