"""Which PGs the sandbox emulates, and their (shared, stateless) emulators.

The one place that knows every emulator: :mod:`~django_pgpay.sandbox.webhooks` and :mod:`~django_pgpay.sandbox.worker`
ask here (never :mod:`~django_pgpay.sandbox.base`), so ``base -> worker -> webhooks`` is a one-way
street. Emulator classes are imported by dotted path on first use, so this
module imports none of them.

    emulator("toss")      # -> TossSandbox()
    emulators()           # every one, in EMULATORS order

A new PG adds one line to :data:`EMULATORS` and one module next to this one;
a project's own emulator (a test-only PG) is named in the setting
``PGPAY_SANDBOX_EMULATORS = {"minipg": "tests.minipg.sandbox.MiniSandbox"}``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:  # pragma: no cover
    from .base import SandboxPG

#: Every emulated PG: name -> dotted path of its :class:`~.base.SandboxPG` subclass.
EMULATORS: dict[str, str] = {
    "toss": "django_pgpay.sandbox.toss.TossSandbox",
    "portone": "django_pgpay.sandbox.portone.PortOneSandbox",
    "portone-v2": "django_pgpay.sandbox.portone.PortOneV2Sandbox",
    "bootpay": "django_pgpay.sandbox.bootpay.BootpaySandbox",
    "stripe": "django_pgpay.sandbox.stripe.StripeSandbox",
}


def known() -> dict[str, str]:
    """:data:`EMULATORS`, then the project's ``PGPAY_SANDBOX_EMULATORS`` (read at call time)."""
    from django.conf import settings

    return {**EMULATORS, **getattr(settings, "PGPAY_SANDBOX_EMULATORS", {})}


@cache
def _load(path: str) -> SandboxPG:
    return import_string(path)()


def emulator(name: str) -> SandboxPG:
    """The (shared, stateless) emulator of PG ``name``; ``KeyError`` for an unknown PG."""
    paths = known()
    if name not in paths:
        raise KeyError(f"no sandbox for PG {name!r}; known: {sorted(paths)}")
    return _load(paths[name])


def emulators() -> list[SandboxPG]:
    """Every emulator, in :data:`EMULATORS` order, then the project's own."""
    return [emulator(name) for name in known()]
