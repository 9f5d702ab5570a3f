"""The sandbox's background work: time-based changes and webhook delivery.

:func:`tick` does one round (every emulator's :meth:`~.base.SandboxPG.apply_due`,
then every due webhook). With ``PGPAY_SANDBOX["WEBHOOKS"]["DELIVERY"] ==
"thread"`` (the default) the first request to the sandbox starts a daemon
:class:`Worker` thread in that server process that ticks every
``POLL_INTERVAL`` seconds; several processes may each run one (deliveries are
claimed, never sent twice). ``manage.py pgpay_sandbox worker`` runs the same
loop in the foreground; with ``"manual"`` nothing runs by itself, which is
what deterministic tests want.
"""

from __future__ import annotations

import logging
import threading

from django.db import connections

from . import clock, conf
from .registry import emulators
from .webhooks import deliver_due

logger = logging.getLogger("django_pgpay.sandbox.worker")


def tick() -> dict[str, int]:
    """One round of background work; returns counts of what happened."""
    now = clock.now()
    changed = 0
    for pg in emulators():
        try:
            changed += pg.apply_due(now)
        except Exception:
            logger.exception("sandbox %s: time-based changes failed", pg.name)
    delivered = deliver_due()
    return {"changed": changed, "attempts": len(delivered), "delivered": sum(r.delivered for r in delivered)}


class Worker(threading.Thread):
    """A daemon thread that calls :func:`tick` every ``poll`` seconds until stopped."""

    def __init__(self, poll: float | None = None):
        super().__init__(name="pgpay-sandbox-worker", daemon=True)
        self.poll = float(poll if poll is not None else conf.webhook_option("POLL_INTERVAL"))
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.wait(self.poll):
                try:
                    tick()
                except Exception:
                    logger.exception("sandbox worker: tick failed")
                    connections.close_all()
        finally:
            connections.close_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait for it (its database connections are closed)."""
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


_worker: Worker | None = None
_lock = threading.Lock()


def ensure_worker() -> Worker | None:
    """Start this process's worker thread if delivery is "thread" and none runs."""
    global _worker
    if conf.webhook_option("DELIVERY") != "thread":
        return None
    with _lock:
        if _worker is None or not _worker.is_alive():
            _worker = Worker()
            _worker.start()
            logger.info("sandbox worker started (every %.2f s)", _worker.poll)
        return _worker


def stop_worker() -> None:
    """Stop this process's worker thread, if any."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.stop()
