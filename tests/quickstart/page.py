"""The blocks of docs/quickstart.rst that the quick start test executes.

A block is marked in the page's source by an rST comment just before its
``.. code-block::`` (a comment is not rendered)::

    .. quickstart: run                       shell commands, run in order
    .. quickstart: serve                     the command that serves the project
    .. quickstart: write bookings/models.py  the block is the whole file
    .. quickstart: append shop/settings.py   the block goes at the end of the file

The page is the single source: the test writes and runs exactly what a reader
copies.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart.rst"

MARKER = re.compile(r"^\.\. quickstart: (?P<action>run|serve|write|append)(?: +(?P<target>\S+))?\s*$")
ACTIONS_WITH_TARGET = {"write", "append"}


@dataclass(frozen=True)
class Block:
    """One marked block: what to do, with which file, the text, and where it is in the page."""

    action: str
    target: str
    text: str
    line: int


class PageError(ValueError):
    """The page's markers or blocks are not what the test can execute."""


def blocks(path: Path = PAGE) -> list[Block]:
    """Every marked block of ``path``, in page order."""
    lines = path.read_text("utf-8").splitlines()
    found = []
    for number, line in enumerate(lines):
        match = MARKER.match(line)
        if match is None:
            if line.startswith(".. quickstart"):
                raise PageError(f"{path.name}:{number + 1}: not a marker this test knows: {line!r}")
            continue
        action, target = match["action"], match["target"] or ""
        if (action in ACTIONS_WITH_TARGET) != bool(target):
            raise PageError(f"{path.name}:{number + 1}: '{action}' {'needs' if action in ACTIONS_WITH_TARGET else 'takes no'} file name")
        found.append(Block(action, target, _code_after(lines, number + 1, path), number + 1))
    return found


def _code_after(lines: list[str], start: int, path: Path) -> str:
    index = start
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index >= len(lines) or not lines[index].startswith(".. code-block::"):
        raise PageError(f"{path.name}:{start}: a quickstart marker must be followed by a code-block")
    index += 1
    while index < len(lines) and re.match(r"^   :\w[\w-]*:", lines[index]):
        index += 1  # :caption: and other options
    body = []
    while index < len(lines) and (not lines[index].strip() or lines[index].startswith("   ")):
        body.append(lines[index])
        index += 1
    text = textwrap.dedent("\n".join(body)).strip("\n")
    if not text:
        raise PageError(f"{path.name}:{start}: the code-block after the marker is empty")
    return text + "\n"
