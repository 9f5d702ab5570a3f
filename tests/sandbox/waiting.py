"""Waiting on state in the browser tests, not on time (they run on a loaded machine next to the suite)."""

from __future__ import annotations

import time

from django_pgpay.sandbox import control


def deliver_until(order, status, *, timeout: float = 20.0):
    """Deliver the sandbox's pending webhooks until ``order`` reaches ``status``; returns the refreshed order.

    A delivery the shop did not acknowledge (its lookup at the PG timed out on
    a loaded machine, say) stays pending and goes again on the next round, as
    the PGs retry. Gives up after ``timeout`` seconds, leaving the order as it is
    for the test's assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        control.deliver_webhooks()
        order.refresh_from_db()
        if order.status == status or time.monotonic() > deadline:
            return order
        time.sleep(0.2)
