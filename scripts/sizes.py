"""Sizes of the package's parts, as issue 16 measures them, and its import cycles.

    python scripts/sizes.py            # the table, the longest functions, the cycles
    python scripts/sizes.py --check    # exit 1 when a part is over its bound or a cycle exists

"Code lines" are the lines of a module that are neither blank, nor comments,
nor docstrings, nor *tables*: module- or class-level assignments whose value
is a literal dict, list, tuple, set or frozenset (error-code maps, field
lists). A function's length counts its code lines the same way (its
docstring aside). Import cycles are found among the package's modules by
their imports: at module level (a cycle there breaks at import time) and
inside functions too (a *deferred* cycle: it works, but only because an
import was moved into a function to hide it). ``TYPE_CHECKING`` blocks are
ignored. A package's ``__init__`` re-exporting its submodules is no cycle.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_pgpay"

#: (glob under the package, bound in code lines, what it is). Stripe's gateway may stay larger.
BOUNDS = [
    ("gateways/pipeline.py", 350, "gateway pipeline (HttpGateway)"),
    ("gateways/base.py", 350, "gateway contract (BaseGateway)"),
    ("gateways/toss.py", 350, "gateway"),
    ("gateways/portone*.py", 350, "gateway"),
    ("gateways/bootpay.py", 350, "gateway"),
    ("gateways/bootpay_*.py", 350, "gateway (Bootpay's receipts)"),
    ("gateways/stripe.py", 500, "gateway (Stripe may stay larger)"),
    ("gateways/stripe_*.py", 350, "gateway (Stripe's wire formats)"),
    ("gateways/wire.py", 350, "gateway (shared wire readers)"),
    ("gateways/fake.py", 350, "gateway (in memory)"),
    ("sandbox/toss.py", 800, "sandbox emulator"),
    ("sandbox/portone*.py", 800, "sandbox emulator"),
    ("sandbox/portone/*.py", 800, "sandbox emulator"),
    ("sandbox/bootpay.py", 800, "sandbox emulator"),
    ("sandbox/stripe.py", 800, "sandbox emulator"),
    ("sandbox/stripe/*.py", 800, "sandbox emulator"),
    ("payments.py", 700, "payments"),
]
#: Emulators that are packages (one module per noun): their total is printed after the table.
PACKAGES = ("sandbox/stripe",)
#: Outside the package, measured as one whole: (folder under the repository, bound in code lines, what it is).
OUTSIDE = [("tests/minipg", 300, "test-only PG of docs/adding_a_pg.rst (gateway + emulator)")]
#: Longest function allowed in payments.py, in code lines.
FUNCTION_BOUND = 60
#: Modules whose functions are held to FUNCTION_BOUND.
FUNCTION_MODULES = ("payments.py",)


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                if isinstance(body[0].value.value, str):
                    lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


_LITERALS = (ast.Dict, ast.List, ast.Tuple, ast.Set)


def _is_table(value: ast.AST | None) -> bool:
    if isinstance(value, _LITERALS):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in {"frozenset", "dict", "set", "tuple"}
        and all(isinstance(arg, _LITERALS) for arg in value.args)
        and bool(value.args)
    )


def _table_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    scopes = [tree.body] + [node.body for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    for body in scopes:
        for node in body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if _is_table(value):
                lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def _comment_or_blank_lines(source: str) -> set[int]:
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        code.update(range(token.start[0], token.end[0] + 1))
    return set(range(1, source.count("\n") + 2)) - code


@dataclass
class Module:
    path: Path
    lines: int
    code: int
    functions: list[tuple[int, str]]  # (code lines, qualified name)


def measure(path: Path) -> Module:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    skipped = _docstring_lines(tree) | _table_lines(tree) | _comment_or_blank_lines(source)
    total = source.count("\n") + (0 if source.endswith("\n") else 1)
    code_lines = set(range(1, total + 1)) - skipped
    functions = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = set(range(child.lineno, child.end_lineno + 1)) & code_lines
                functions.append((len(span), prefix + child.name))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return Module(path, total, len(code_lines), sorted(functions, reverse=True))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, known: set[str], *, deferred: bool = False) -> set[str]:
    """The package modules ``path`` imports: at module level, or anywhere with ``deferred``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def resolve(level: int, module: str | None) -> str:
        base = package.split(".")
        if level > 1:
            base = base[: len(base) - (level - 1)]
        return ".".join([*base, *(module.split(".") if module else [])])

    def add(node) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.level, node.module) if node.level else (node.module or "")
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)

    def walk(body) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                walk(node.orelse)
                continue
            if deferred and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                walk(node.body)
                continue
            for field in ("body", "orelse", "finalbody"):
                if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)) and hasattr(node, field):
                    walk(getattr(node, field))
            for handler in getattr(node, "handlers", []) if isinstance(node, ast.Try) else []:
                walk(handler.body)
            add(node)

    walk(tree.body)
    # "from . import x" inside package p names module p.x; "from .a import B" names p.a (and p.a.B, unknown).
    return {m for m in found if m in known and m != name}


def cycles(paths: list[Path], *, deferred: bool = False) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, known, deferred=deferred) for p in paths}
    for node, targets in graph.items():
        # A package's __init__ importing its own submodules (re-exports) is not a cycle of concern.
        if any(p.name == "__init__.py" and module_name(p) == node for p in paths):
            continue
        graph[node] = {
            t for t in targets if not any(p.name == "__init__.py" and module_name(p) == t and node.startswith(t + ".") for p in paths)
        }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a bound is exceeded or an import cycle exists")
    args = parser.parse_args(argv)
    paths = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)
    over: list[str] = []
    print(f"{'module':46} {'lines':>6} {'code':>6} {'bound':>6}  longest function")
    seen: set[Path] = set()
    for pattern, bound, what in BOUNDS:
        for path in sorted(PACKAGE.glob(pattern)):
            if path in seen:
                continue
            seen.add(path)
            module = measure(path)
            longest = f"{module.functions[0][1]} ({module.functions[0][0]})" if module.functions else ""
            flag = "  OVER" if module.code > bound else ""
            print(f"{str(path.relative_to(PACKAGE)):46} {module.lines:6} {module.code:6} {bound:6}  {longest}{flag}")
            if module.code > bound:
                over.append(f"{path.relative_to(PACKAGE)}: {module.code} code lines > {bound} ({what})")
    for folder in PACKAGES:
        members = sorted((PACKAGE / folder).glob("*.py"))
        if members:
            measured = [measure(p) for p in members]
            longest = max((f for m in measured for f in m.functions), default=(0, ""))
            print(
                f"{folder + '/ (package total)':46} {sum(m.lines for m in measured):6} {sum(m.code for m in measured):6} {'':6}"
                f"  {len(members)} modules; longest function {longest[1]} ({longest[0]})"
            )
    for folder, bound, what in OUTSIDE:
        measured = [measure(p) for p in sorted((ROOT / folder).glob("*.py"))]
        code = sum(m.code for m in measured)
        print(f"{folder + '/ (total)':46} {sum(m.lines for m in measured):6} {code:6} {bound:6}  {what}{'  OVER' if code > bound else ''}")
        if code > bound:
            over.append(f"{folder}: {code} code lines > {bound} ({what})")
    for name in FUNCTION_MODULES:
        module = measure(PACKAGE / name)
        long = [(n, f) for n, f in module.functions if n > FUNCTION_BOUND]
        print(f"\n{name}: functions over {FUNCTION_BOUND} code lines: " + (", ".join(f"{f} ({n})" for n, f in long) or "none"))
        over.extend(f"{name}: {f} has {n} code lines > {FUNCTION_BOUND}" for n, f in long)
    total = sum(measure(p).code for p in paths)
    sandbox = sum(measure(p).code for p in paths if "sandbox" in p.parts)
    print(f"\npackage: {total} code lines ({sandbox} in the sandbox) in {len(paths)} modules")
    found = cycles(paths)
    late = [c for c in cycles(paths, deferred=True) if c not in found]
    print("import cycles: " + ("none" if not found else ""))
    for component in found:
        print("  " + " <-> ".join(component))
    print("deferred import cycles (hidden by an import inside a function): " + ("none" if not late else ""))
    for component in late:
        print("  " + " <-> ".join(component))
    found = found + late
    if args.check and (over or found):
        print("\n" + "\n".join(over), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
