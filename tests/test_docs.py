"""The docs agree with the code: what docs/ names must exist, and the tables match what the code declares.

* the gateways' feature matrix and their classes-and-options table;
* every ``PGPAY`` / ``PGPAY_SANDBOX`` key the pages name (in prose or in a
  settings snippet), every gateway option in a snippet;
* every URL name (``django_pgpay:...``, ``pgpay_sandbox:...``), every URL path
  under ``pay/`` or the sandbox's prefix, and the URL table of views.rst;
* every management command (and ``pgpay_sandbox`` subcommand), every ``make``
  target, every hook a paragraph about hooks names;
* every upper-case name a sandbox page gives (settings, codes) is in the code;
* no page over 400 lines; settings snippets import what they use; the quick
  start's marked blocks parse (tests/quickstart/ executes them).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.urls import NoReverseMatch, Resolver404, get_resolver, resolve, reverse
from django.utils.module_loading import import_string

from django_pgpay import conf
from django_pgpay.sandbox.base import emulators
from django_pgpay.sandbox.checks import GENERAL_KEYS
from django_pgpay.views import WebhookView

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "django_pgpay"
#: Pages another part of the project owns or that quote other text as it is.
PAGES = sorted(p for p in DOCS.glob("*.rst") if p.name != "changelog.rst")

GATEWAYS = {
    "Toss": "django_pgpay.gateways.toss.TossGateway",
    "PortOne V1": "django_pgpay.gateways.portone.PortOneV1Gateway",
    "PortOne V2": "django_pgpay.gateways.portone.PortOneV2Gateway",
    "Stripe": "django_pgpay.gateways.stripe.StripeGateway",
    "Bootpay": "django_pgpay.gateways.bootpay.BootpayGateway",
    "Fake": "django_pgpay.gateways.fake.FakeGateway",
}
FLAGS = [
    "supports_partial_cancel",
    "supports_idempotency_key",
    "signs_webhooks",
    "supports_lookup_by_order",
    "supports_virtual_account",
    "sends_deposit_deadline",
    "requires_confirm_call",
]


def text(page: Path) -> str:
    return page.read_text("utf-8")


def source(*paths: Path) -> str:
    """The text of every Python, template and script file under ``paths``."""
    parts = []
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in {".py", ".html", ".js"})
        parts += [f.read_text("utf-8") for f in files]
    return "\n".join(parts)


ALL_SOURCE = source(PACKAGE)


def literal(name: str, haystack: str) -> bool:
    """``name`` occurs in ``haystack`` as a quoted string."""
    return f'"{name}"' in haystack or f"'{name}'" in haystack


# --- tables -----------------------------------------------------------------------------------


def list_tables(page: Path) -> Iterator[list[list[str]]]:
    """Each ``.. list-table::`` of ``page`` as rows of cells (continuation lines joined)."""
    for chunk in text(page).split(".. list-table::")[1:]:
        rows: list[list[str]] = []
        for line in chunk.splitlines()[1:]:
            if line.startswith("   * - "):
                rows.append([line[7:].strip()])
            elif line.startswith("     - "):
                rows[-1].append(line[7:].strip())
            elif line.startswith("       ") and rows:
                rows[-1][-1] += " " + line.strip()
            elif line.strip() and not line.startswith("   :") and not line.startswith("   "):
                break
        yield rows


def table_with(page: Path, header: str) -> list[list[str]]:
    for rows in list_tables(page):
        if rows and header in rows[0]:
            return rows
    raise AssertionError(f"{page.name}: no list-table with a {header!r} column")


def test_feature_matrix_matches_capability_flags():
    rows = {row[0]: row[1:] for row in table_with(DOCS / "gateways.rst", "Partial cancel")[1:]}
    assert set(GATEWAYS) <= set(rows), rows.keys()
    for name, path in GATEWAYS.items():
        cls = import_string(path)
        expected = ["yes" if getattr(cls, flag) else "no" for flag in FLAGS]
        assert rows[name] == expected, f"docs/gateways.rst row {name}: {rows[name]} != class flags {expected}"


def test_classes_and_options_table_matches_the_gateways():
    rows = table_with(DOCS / "gateways.rst", "Required options")[1:]
    classes = {re.sub(r"``", "", row[1]): row for row in rows}
    assert set(classes) == set(GATEWAYS.values()), "every gateway class has one row"
    for path, (_pg, _cls, required, other) in classes.items():
        cls = import_string(path)
        module = source(Path(import_string(path.rsplit(".", 1)[0]).__file__))
        named_required = set(re.findall(r"``([A-Z_]+)``", required))
        assert set(cls.required_options) <= named_required, f"{path}: required_options {cls.required_options} not all in {required!r}"
        for option in named_required | set(re.findall(r"``([A-Z_]+)``", other)):
            assert literal(option, module) or option in (cls.__doc__ or ""), f"{path}: option {option} is not read by the gateway"


# --- settings keys --------------------------------------------------------------------------------


def sandbox_section_source(section: str) -> str:
    modules = {type(pg).__module__ for pg in emulators() if pg.settings_section == section}
    assert modules, f"PGPAY_SANDBOX[{section!r}] is not a section of any emulator"
    sandbox = PACKAGE / "sandbox"
    return source(*(Path(import_string(m).__file__) for m in modules), sandbox / "base.py", sandbox / "checks.py", sandbox / "conf.py")


SANDBOX_SECTIONS = {pg.settings_section for pg in emulators()}


def check_pgpay_key(key: str, where: str) -> None:
    assert key in conf.DEFAULTS, f'{where}: PGPAY["{key}"] is not a setting (django_pgpay/conf.py DEFAULTS)'


def check_sandbox_key(section: str, key: str | None, where: str) -> None:
    assert section in SANDBOX_SECTIONS | GENERAL_KEYS, f'{where}: PGPAY_SANDBOX["{section}"] is not a sandbox setting'
    if key is None:
        return
    if section == "WEBHOOKS":
        from django_pgpay.sandbox.conf import WEBHOOK_DEFAULTS

        assert key in WEBHOOK_DEFAULTS, f'{where}: PGPAY_SANDBOX["WEBHOOKS"]["{key}"] is not a setting'
    elif section in SANDBOX_SECTIONS:
        assert literal(key, sandbox_section_source(section)), f'{where}: PGPAY_SANDBOX["{section}"]["{key}"] is not read by the sandbox'


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_settings_keys_named_in_prose_exist(page):
    for match in re.finditer(r'PGPAY\["([A-Z_]+)"\]', text(page)):
        check_pgpay_key(match.group(1), page.name)
    for match in re.finditer(r'PGPAY_SANDBOX\["([A-Z0-9_]+)"\](?:\["([A-Z0-9_]+)"\])?', text(page)):
        check_sandbox_key(match.group(1), match.group(2), page.name)


def code_blocks(page: Path, languages=("python",)) -> Iterator[tuple[int, str]]:
    """``(line, code)`` of each ``.. code-block::`` in ``languages`` and each ``::`` literal block."""
    lines = text(page).splitlines()
    for number, line in enumerate(lines):
        if line.startswith(".. code-block::") and line.split("::", 1)[1].strip() not in languages:
            continue
        if not (line.startswith(".. code-block::") or (line.rstrip().endswith("::") and not line.lstrip().startswith(".."))):
            continue
        indent = None
        body = []
        for following in lines[number + 1 :]:
            if not following.strip():
                body.append("")
                continue
            current = len(following) - len(following.lstrip())
            if indent is None:
                if following.lstrip().startswith(":") and current > 0 and line.startswith(".."):
                    continue  # an option of the directive
                indent = current
                if indent == 0:
                    break
            if current < indent:
                break
            body.append(following[indent:])
        if body:
            yield number + 1, "\n".join(body).strip("\n")


def settings_dicts(code: str) -> Iterator[tuple[str, ast.Dict]]:
    """``(name, dict node)`` for each ``PGPAY = {...}`` / ``PGPAY_SANDBOX = {...}`` in ``code`` that parses."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ("PGPAY", "PGPAY_SANDBOX"):
                    yield target.id, node.value


def keys(node: ast.Dict) -> Iterator[tuple[str, ast.AST]]:
    for key, value in zip(node.keys, node.values):
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield key.value, value


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_settings_snippets_name_only_real_keys_and_options(page):
    seen = 0
    for line, code in code_blocks(page):
        where = f"{page.name}:{line}"
        for name, node in settings_dicts(code):
            seen += 1
            if name == "PGPAY":
                for key, value in keys(node):
                    check_pgpay_key(key, where)
                    if key == "GATEWAYS" and isinstance(value, ast.Dict):
                        for alias, entry in keys(value):
                            check_gateway_entry(alias, entry, where)
            else:
                for section, value in keys(node):
                    check_sandbox_key(section, None, where)
                    if isinstance(value, ast.Dict):
                        for key, url in keys(value):
                            check_sandbox_key(section, key, where)
                            if key.endswith("WEBHOOK_URL") and isinstance(url, ast.Constant) and url.value:
                                assert_webhook_path(url.value, where)
        if "import os" not in code and re.search(r"^(PGPAY|PGPAY_SANDBOX|SITE_URL) = ", code, re.M):
            assert "os." not in code, f"{where}: a settings snippet uses os without importing it"
    if page.name in ("quickstart.rst", "sandbox.rst", "gateways.rst"):
        assert seen, f"{page.name} has no settings snippet to check"


def check_gateway_entry(alias: str, entry: ast.AST, where: str) -> None:
    if not isinstance(entry, ast.Dict):
        return
    fields = dict(keys(entry))
    assert set(fields) <= {"CLASS", "OPTIONS"}, f"{where}: GATEWAYS[{alias!r}] has {set(fields)}"
    path = fields.get("CLASS")
    if not (isinstance(path, ast.Constant) and isinstance(path.value, str)):
        return
    cls = import_string(path.value)
    # The class's own module and those of its bases (base.py, pipeline.py, portone_base.py ...).
    bases = [Path(import_string(c.__module__).__file__) for c in cls.__mro__ if c.__module__.startswith("django_pgpay.")]
    module = source(*dict.fromkeys(bases), PACKAGE / "gateways" / "http.py")
    options = fields.get("OPTIONS")
    for option, _value in keys(options) if isinstance(options, ast.Dict) else ():
        assert literal(option, module), f"{where}: {cls.__name__} has no option {option}"


# --- URLs ----------------------------------------------------------------------------------------


def url_names(namespace: str) -> set[str]:
    resolver = get_resolver("tests.urls")
    _prefix, sub = resolver.namespace_dict[namespace]
    return {name for name in sub.reverse_dict if isinstance(name, str)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_url_names_exist(page):
    for namespace, name in re.findall(r"\b(django_pgpay|pgpay_sandbox):([\w-]+)", text(page)):
        assert name in url_names(namespace), f"{page.name}: no URL named {namespace}:{name}"


def test_views_url_table_is_the_urlconf():
    from django_pgpay import urls

    rows = re.findall(r"^``pay/(\S+)``\s+``(\w+)``", text(DOCS / "views.rst"), re.M)
    documented = {(name, route) for route, name in rows}  # a name may have two routes (cancel: with the model, without)
    actual = {(p.name, re.sub(r"<\w+:(\w+)>", r"<\1>", str(p.pattern))) for p in urls.urlpatterns}
    assert documented == actual


def concrete(path: str) -> str:
    """A documented path made into one a request could have."""
    path = path.split("?", 1)[0].split(" ", 1)[0]
    path = re.sub(r"<(alias)>", "toss", path)
    path = re.sub(r"<[^>]+>|\{[^}]+\}", "x1", path)
    return "/" + path.lstrip("/")


def assert_webhook_path(url: str, where: str) -> None:
    path = concrete(re.sub(r"^https?://[^/]+", "", url))
    try:
        match = resolve(path, urlconf="tests.urls")
    except Resolver404:
        raise AssertionError(f"{where}: {url} is not a URL of django-pgpay (every webhook would be a 404)") from None
    assert issubclass(getattr(match.func, "view_class", type), WebhookView), f"{where}: {url} is not a webhook URL"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_paths_resolve(page):
    body = text(page)
    for path in re.findall(r"``(/?pay/[^`\s]*)``", body) + re.findall(r'"(/pay/[^"\s]*)"', body):
        if "…" in path or "..." in path or path.strip("/") == "pay":
            continue
        try:
            resolve(concrete(path), urlconf="tests.urls")
        except Resolver404:
            raise AssertionError(f"{page.name}: {path} is not a django-pgpay URL") from None
    if page.name.startswith("sandbox"):
        prefixes = "|".join(re.escape(pg.name) for pg in emulators()) + "|control|dashboard"
        for path in re.findall(rf"``((?:{prefixes})/[^`\s]*)``", body):
            if "…" in path or "..." in path or path.count("/") == 1 and path.endswith("/"):
                continue  # an elision, or a PG's prefix alone
            try:
                match = resolve("/sandbox" + concrete(path.replace("<action>", "deposit").replace("<pg>", "toss")), urlconf="tests.urls")
            except Resolver404:
                raise AssertionError(f"{page.name}: sandbox/{path} is not a sandbox URL") from None
            # An emulator answers unknown API paths as its PG does (a catch-all): that is not an endpoint.
            assert "unknown" not in getattr(match.func, "__name__", ""), f"{page.name}: sandbox/{path} is not an endpoint of the sandbox"


def test_the_quickstarts_webhook_url_is_the_toss_aliass():
    assert reverse("django_pgpay:webhook", kwargs={"alias": "toss"}, urlconf="tests.urls") == "/pay/toss/webhook/"
    assert '"WEBHOOK_URL": "/pay/toss/webhook/"' in text(DOCS / "quickstart.rst")
    with pytest.raises(NoReverseMatch):
        reverse("django_pgpay:webhooks", urlconf="tests.urls")


# --- commands, make targets, hooks ------------------------------------------------------------------


EXAMPLE_COMMANDS = {p.stem for p in (ROOT / "example_project").glob("*/management/commands/*.py") if not p.stem.startswith("_")}


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_management_commands_and_make_targets_exist(page):
    body = text(page)
    commands = set(get_commands()) | EXAMPLE_COMMANDS
    for name in re.findall(r"manage\.py (\w+)", body):
        assert name in commands, f"{page.name}: manage.py {name} does not exist"
    # pgpay_... in prose: a command, or something else the code has (a template tag, a table, a database).
    for name in set(re.findall(r"``(pgpay_\w+)``", body)):
        assert name in commands or re.search(
            rf"\b{name}\b", ALL_SOURCE + source(ROOT / "bench") + text(ROOT / "Makefile") + text(ROOT / ".ci" / "run")
        ), f"{page.name}: {name} is not a command nor anything in the code"
    subcommands = {"status", "deliver", "tick", "worker", "clock", "fault", "faults", "action", "reset"}
    for tail in re.findall(r"pgpay_sandbox ([a-z][^`]*)``", body):
        for word in re.findall(r"(?:^|\| )([a-z]+)", tail):
            assert word in subcommands, f"{page.name}: pgpay_sandbox {word} does not exist"
    makefile = text(ROOT / "Makefile")
    for target in set(re.findall(r"`make ([a-z][\w-]*)", body)) | set(re.findall(r"^\s*(?:\$ )?make ([a-z][\w-]*)", body, re.M)):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{page.name}: make {target} does not exist"


HOOK_CLASSES = [
    "django_pgpay.sandbox.base.SandboxPG",
    "django_pgpay.gateways.pipeline.HttpGateway",
    "django_pgpay.views.CheckoutMixin",
    "django_pgpay.views.ConfirmMixin",
    "django_pgpay.views.CancelMixin",
    "django_pgpay.views.InvoiceMixin",
    "django_pgpay.models.AbstractOrder",
    "django_pgpay.admin.OrderAdminMixin",
]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_hooks_named_in_the_docs_exist(page):
    """In a paragraph about hooks, every ``snake_case`` name is an attribute of a class meant to be extended."""
    attributes = set(dir(import_string("django_pgpay.signals")))
    for path in HOOK_CLASSES:
        attributes |= set(dir(import_string(path)))
    for paragraph in re.split(r"\n\s*\n", text(page)):
        if not re.search(r"\bhooks?\b", paragraph):
            continue
        for name in re.findall(r"``([a-z]+(?:_[a-z0-9]+)+)(?:\(\))?``", paragraph):
            assert name in attributes, f"{page.name}: the hook {name} does not exist"


# --- sandbox pages: every upper-case name is the code's -----------------------------------------------


@pytest.mark.parametrize("page", sorted(DOCS.glob("sandbox*.rst")), ids=lambda p: p.name)
def test_sandbox_pages_name_only_what_the_code_has(page):
    for name in set(re.findall(r"``([A-Z][A-Z0-9_]{2,})``", text(page))):
        assert re.search(rf"\b{name}\b", ALL_SOURCE), f"{page.name}: {name} appears nowhere in django_pgpay/"


# --- size, the quick start ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.rst")), ids=lambda p: p.name)
def test_no_page_over_400_lines(page):
    assert len(text(page).splitlines()) <= 400, f"{page.name}: split it"


def test_the_quickstarts_marked_blocks_parse():
    from tests.quickstart.page import blocks

    marked = blocks()
    assert [b.action for b in marked].count("serve") == 1
    written = {b.target for b in marked if b.action in ("write", "append")}
    assert {"shop/settings.py", "shop/urls.py", "bookings/models.py", "bookings/views.py", "bookings/admin.py"} <= written
    for block in marked:
        if block.target.endswith(".py"):
            compile(block.text, block.target, "exec")


#: ``payments.cancel(order, reason=...)``: the amount left out. It is required (``payments.FULL`` for
#: everything) since a blank amount refunded everything; a page or a seed that still writes it breaks.
_CANCEL_WITHOUT_AMOUNT = re.compile(r"payments\.cancel\(\s*[\w.]+\s*,\s*(?:reason|source|actor|idempotency_key)\s*=")


def _cancels_without_an_amount(path: Path) -> list[int]:
    """Lines of ``payments.cancel(...)`` calls in a Python file with fewer than two positional arguments."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "cancel"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "payments"
        and len(node.args) < 2
        and not any(k.arg == "amount" for k in node.keywords)
    ]


def test_no_page_or_example_cancels_without_an_amount():
    pages = [*DOCS.glob("*.rst"), ROOT / "README.md"]
    code = [
        *(ROOT / "example_project").rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
        *PACKAGE.rglob("*.py"),
    ]
    offenders = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        for path in pages
        for text in [path.read_text(encoding="utf-8")]
        for match in _CANCEL_WITHOUT_AMOUNT.finditer(text)
    ]
    offenders += [f"{path.relative_to(ROOT)}:{line}" for path in code for line in _cancels_without_an_amount(path)]
    assert offenders == []
