# django-pgpay developer entry points. GNU make; needs nothing installed by hand
# on a Debian machine: system packages come from scripts/system-deps.sh (apt),
# Python tools from PyPI into .tools/, the project into .venv/.
#
#   make test             unit + e2e tests on SQLite, 2 processes (ARGS="-k foo" passes through; PYTEST_WORKERS=0: one)
#   make test-quickstart  docs/quickstart.rst, executed in a new project from the wheel (about 30 s)
#   make test-postgres    same on PostgreSQL (127.0.0.1:5432)
#   make test-mariadb     same on MariaDB    (127.0.0.1:3306)
#   make tox              the Django/Python matrix in tox.ini
#   make bench-flash      flash-sale benchmark on PostgreSQL under gunicorn (ARGS="--buyers 40 --seats 5")
#   make docs | build | demo | demo-check | clean
#   make bench-scale      webhook burst inline vs queued, reconcile with 1 and 2 workers, flash sale on 2 app hosts
#                         (ARGS="--deliveries 5000 --orders 100000"; PostgreSQL)
#   make bench-csv        CSV export of 1,000,000 orders vs the in-memory way (ARGS="--orders 20000")
#   make bench-invoices   200 PDF invoices our way vs. one render per order (ARGS="--orders 50")
#   make soak             the stateful money soak on PostgreSQL (BUDGET=2000 sequences, SEED=random, printed)
#   make fuzz             generated HTTP against every endpoint on PostgreSQL (BUDGET=5000 requests)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Python for .venv (the project's own env). Override: make test PYTHON=/path/to/python3
PYTHON ?= $(firstword $(wildcard /root/.pyenv/versions/3.13.0/bin/python3) python3)
# Python that hosts the tool venv (uv, tox, build, twine); any 3.10+ will do.
BOOTSTRAP_PYTHON ?= python3

TOOLS := .tools
VENV := .venv
UV := $(TOOLS)/bin/uv
VPY := $(VENV)/bin/python
ARGS ?=
TOXENVS ?= py311-django52,py313-django61
# pytest-xdist processes for `make test` (each has its own test database); 0 runs in this process.
PYTEST_WORKERS ?= 2
# tox's working directory (tox's own default .tox when empty) and extra flags of `tox run`: CI
# builds each database step's env first (TOXFLAGS=--notest), one after the other (setuptools builds
# the wheel in the checkout's build/), then runs both at once with TOXFLAGS=--skip-pkg-install.
TOXWORKDIR ?=
TOXFLAGS ?=

# Browsers come from Debian (chromium); Playwright must never download its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# uv: keep its cache out of the tree and don't let an outer venv leak in.
export UV_LINK_MODE := copy
unexport VIRTUAL_ENV

PYTEST := $(VPY) -m pytest -W error::DeprecationWarning

.PHONY: lint format sizes help system-deps tools venv venv-mysql test test-quickstart test-postgres test-mariadb tox \
        docs build messages demo demo-check bench-flash bench-scale bench-csv bench-invoices soak fuzz clean FORCE

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

system-deps:
	@scripts/system-deps.sh

$(TOOLS)/.stamp: requirements/tools.txt
	@test -x $(TOOLS)/bin/python || $(BOOTSTRAP_PYTHON) -m venv $(TOOLS)
	@echo "Installing the build tools into $(TOOLS)/ (uv, tox, build, twine)"
	@# (the filter drops pip's notes about this machine's missing local index folders)
	@$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check -r requirements/tools.txt 2>&1 \
	    | { grep -v "^WARNING: Location 'file:" || true; }
	@touch $@

tools: $(TOOLS)/.stamp

# The stamp is keyed on setup.py (the dependencies); asking for another
# interpreter (PYTHON=...) than the one recorded rebuilds .venv from scratch.
ifneq ($(shell cat $(VENV)/.python 2>/dev/null),$(PYTHON))
$(VENV)/.stamp: FORCE
endif
$(VENV)/.stamp: setup.py $(TOOLS)/.stamp
	@if [[ ! -x $(VPY) || "$$(cat $(VENV)/.python 2>/dev/null)" != "$(PYTHON)" ]]; then \
	    echo "Creating $(VENV) with $(PYTHON)"; \
	    $(UV) venv -q --clear --python $(PYTHON) $(VENV); \
	    echo "$(PYTHON)" > $(VENV)/.python; \
	fi
	@echo "Installing django-pgpay (editable) and its dependencies into $(VENV)/"
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(UV) pip install -q -e '.[test,pdf,docs]'
	@# PortOne's official V1 client pins requests==2.26.0: installed without its
	@# dependencies (it works with today's requests); the sandbox tests drive it.
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(UV) pip install -q --no-deps iamport-rest-client==0.9.0
	@# Celery's Tasks backend needs Django 6 (django.tasks): tests/test_celery.py, skipped without it.
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(UV) pip install -q "django-tasks-celery[celery]>=0.1.1; python_version >= '3.12'" \
	    "celery[redis]>=5.4; python_version >= '3.12'"
	@rm -f $(VENV)/.stamp-mysql
	@touch $@

$(VENV)/.stamp-mysql: $(VENV)/.stamp
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(UV) pip install -q -e '.[test,pdf,docs,mysql]'
	@touch $@

venv: system-deps $(VENV)/.stamp

venv-mysql: venv $(VENV)/.stamp-mysql

test: venv
	$(PYTEST) -n $(PYTEST_WORKERS) $(ARGS)

# Builds a wheel with uv unless PGPAY_QUICKSTART_WHEEL names one (CI passes dist/'s);
# screenshots and the generated project go to $PGPAY_ARTIFACTS_DIR/quickstart/.
test-quickstart: venv
	PGPAY_QUICKSTART=1 $(PYTEST) tests/quickstart $(ARGS)

test-postgres: venv
	PGPAY_TEST_DB=postgres $(PYTEST) $(ARGS)

test-mariadb: venv-mysql
	PGPAY_TEST_DB=mariadb $(PYTEST) $(ARGS)

tox: system-deps tools
	$(TOOLS)/bin/tox run $(TOXFLAGS) $(if $(TOXWORKDIR),--workdir $(TOXWORKDIR)) -e $(TOXENVS) $(if $(ARGS),-- $(ARGS))

docs: venv
	$(VENV)/bin/sphinx-build -q -W --keep-going -b html docs docs/_build/html
	@echo "Docs: file://$(CURDIR)/docs/_build/html/index.html"

build: tools
	rm -rf dist build
	$(TOOLS)/bin/python -m build -q --installer uv -o dist .
	$(TOOLS)/bin/twine check --strict dist/*

# Compile the .po catalogues into the .mo files that ship in the wheel.
# ruff: lint and format check of the whole tree (configured in pyproject.toml).
# `make format` rewrites the files the formatter would change.
lint: tools
	$(TOOLS)/bin/ruff check .
	$(TOOLS)/bin/ruff format --check .

format: tools
	$(TOOLS)/bin/ruff check --fix .
	$(TOOLS)/bin/ruff format .

# Sizes of the gateways, the sandbox emulators and payments.py, the longest functions,
# import cycles (scripts/sizes.py; --check fails on a bound or a cycle).
sizes: venv
	$(VPY) scripts/sizes.py $(ARGS)

messages: venv
	cd django_pgpay && DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=$(CURDIR) ../$(VPY) -m django makemessages -l ko --no-location --no-obsolete
	cd django_pgpay && DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=$(CURDIR) ../$(VPY) -m django compilemessages

# 200 buyers for 20 places, ours against the seed tutorial's views, side by side
# (bench/flash_sale.py; needs PostgreSQL at 127.0.0.1:5432; not run in CI).
bench-flash: venv
	$(VPY) bench/flash_sale.py $(ARGS)

# A webhook burst (inline vs queued through django-tasks-db workers), pgpay_reconcile --enqueue
# with 1 and 2 workers, and the flash sale on one and two app hosts (bench/scale.py; PostgreSQL;
# not run in CI). Under flock: it needs the machine to itself.
bench-scale: venv
	flock /tmp/pgpay-heavy.lock $(VPY) bench/scale.py $(ARGS)

demo: venv
	@PYTHON=$(CURDIR)/$(VPY) scripts/demo.sh serve

demo-check: venv
	@PYTHON=$(CURDIR)/$(VPY) scripts/demo.sh check

# Benchmarks print ratios against the tutorials' way, run side by side (see bench/README.md).
bench-csv: venv
	$(VPY) bench/csv_export.py $(ARGS)

bench-invoices: venv
	$(VPY) bench/invoices.py $(ARGS)

# The stateful soak (tests/soak/test_stateful.py): BUDGET sequences of up to STEPS steps
# across the five emulated PGs over HTTP, on PostgreSQL (127.0.0.1:5432), then BUDGET/4 with a
# task queue (django-tasks-db workers, tasks lost); the seed is printed.
BUDGET ?=
SEED ?=
STEPS ?= 30
soak: venv
	@seed=$${SEED:-$$(( (RANDOM << 15) | RANDOM ))}; budget=$${BUDGET:-2000}; \
	echo "soak: seed $$seed, $$budget sequences of up to $(STEPS) steps (make soak SEED=$$seed BUDGET=$$budget replays them)"; \
	PGPAY_TEST_DB=postgres PGPAY_TEST_DB_NAME=$${PGPAY_TEST_DB_NAME:-pgpay_soak} PGPAY_SOAK_EXAMPLES=$$budget PGPAY_SOAK_STEPS=$(STEPS) \
	    $(PYTEST) -p no:randomly -p no:logging -q -s tests/soak/test_stateful.py --hypothesis-seed=$$seed; \
	cat $${PGPAY_ARTIFACTS_DIR:-artifacts}/soak-summary.json $${PGPAY_ARTIFACTS_DIR:-artifacts}/soak-queued-summary.json

# The fuzz suite (tests/fuzz/): BUDGET generated requests against every endpoint, on PostgreSQL.
fuzz: venv
	@budget=$${BUDGET:-5000}; echo "fuzz: $$budget requests"; \
	PGPAY_TEST_DB=postgres PGPAY_TEST_DB_NAME=$${PGPAY_TEST_DB_NAME:-pgpay_fuzz} PGPAY_FUZZ_EXAMPLES=$$budget \
	    $(PYTEST) -p no:randomly -p no:logging -q -s tests/fuzz/test_http_fuzz.py $(if $(SEED),--hypothesis-seed=$(SEED))

clean:
	rm -rf $(VENV) $(TOOLS) .tox .tox-* build dist *.egg-info docs/_build artifacts \
	       example_project/db.sqlite3 .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

FORCE:
