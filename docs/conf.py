"""Sphinx configuration for django-pgpay's documentation.

Autodoc imports the package, so Django is set up first with the test settings
(``tests.settings``), which install ``django_pgpay`` and a concrete test app.
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# -- Django -------------------------------------------------------------------
import django  # noqa: E402
from django.conf import settings  # noqa: E402

if (ROOT / "tests" / "testapp").is_dir():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
elif not os.environ.get("DJANGO_SETTINGS_MODULE"):
    # Before the test app exists: just enough of Django for autodoc.
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_pgpay",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
django.setup()

# -- Project ------------------------------------------------------------------
project = "django-pgpay"
author = "django-pgpay contributors"
copyright = "2026, django-pgpay contributors"  # noqa: A001 - Sphinx's name
_init = (ROOT / "django_pgpay" / "__init__.py").read_text(encoding="utf-8")
release = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", _init, re.M).group(1)
version = ".".join(release.split(".")[:2])

# -- General ------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False
language = "en"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

myst_heading_anchors = 3
# CHANGELOG.md is written for GitHub; its links to the outside are fine as they are.
suppress_warnings = ["myst.xref_missing"]

# -- HTML ---------------------------------------------------------------------
try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # pragma: no cover - the docs extra installs furo
    html_theme = "alabaster"
html_title = f"django-pgpay {release}"
html_static_path = []


# -- Reference pages for modules that are not written yet ----------------------
# reference.rst documents every public module. While a module's source file does
# not exist yet, its ``automodule`` is replaced by a note, so ``-W`` builds pass
# on a tree that is still growing. A module that exists but fails to import is
# an error as usual.
_AUTOMODULE = re.compile(r"^\.\. automodule:: (?P<module>[\w.]+)\s*$", re.M)


def _module_exists(dotted):
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _note_missing_modules(app, docname, source):
    if docname != "reference":
        return

    def replace(match):
        module = match.group("module")
        if _module_exists(module):
            return match.group(0)
        return f".. note::\n\n   ``{module}`` is not written yet.\n\n.. Skipped automodule:: {module}"

    source[0] = _AUTOMODULE.sub(replace, source[0])


def setup(app):
    app.connect("source-read", _note_missing_modules)
