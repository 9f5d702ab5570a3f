"""Every PG x every money operation x every fault the sandbox can produce: what the shop ends with.

Each cell drives one operation through the sandbox over HTTP with the fault
armed, then lets the shop's cron run (``pgpay_reconcile``), and checks the
outcome of :data:`OUTCOMES` plus every invariant of DESIGN.md against the
sandbox's records. ``docs/reliability.rst`` shows the same table
(``tests/test_docs.py`` keeps them equal).

Operations: ``pay`` (the buyer comes back and the shop confirms or verifies:
Toss and Bootpay confirm, PortOne and Stripe look the payment up), ``refund``
(a full refund by staff), ``partial`` (5,000 of 20,000), ``webhook`` (the
buyer never comes back; only the PG's webhook, or the shop's cron, can tell).
Faults on calls: ``error`` / ``timeout`` / ``malformed`` answers ``before`` or
``after`` the PG committed, ``decline`` at confirm. Faults on webhooks:
``drop``, ``duplicate``, ``reorder``, ``delay``.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from django_pgpay import payments
from django_pgpay.sandbox import control
from django_pgpay.status import OrderStatus as S
from tests.testapp.models import Booking

from .world import ALIASES, FAULT_DELAY, READ_TIMEOUT

pytestmark = pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="the fault matrix runs on PostgreSQL and MariaDB in CI (115 cells over HTTP; SQLite adds nothing to it)",
)

CALL_FAULTS = ["error_before", "error_after", "timeout_before", "timeout_after", "malformed_before", "malformed_after"]
WEBHOOK_FAULTS = ["drop", "duplicate", "reorder", "delay"]

#: (operation, fault) -> the order's status once the shop's cron has run. The same for every PG but where noted.
OUTCOMES: dict[tuple[str, str], str] = {
    **{("pay", fault): S.PAID for fault in CALL_FAULTS},
    ("pay", "decline"): S.FAILED,
    **{("refund", fault): S.CANCELED if fault.endswith("after") else S.PAID for fault in CALL_FAULTS},
    **{("partial", fault): S.PARTIAL_CANCELED if fault.endswith("after") else S.PAID for fault in CALL_FAULTS},
    **{("webhook", fault): S.PAID for fault in WEBHOOK_FAULTS},
}
#: Cells that differ by PG: a decline happens in PortOne's and Stripe's own windows (no confirm call
#: of ours to decline); the buyer may pay again, so the order waits and then expires unpaid.
PG_OUTCOMES: dict[tuple[str, str, str], str] = {
    **{(alias, "pay", "decline"): S.EXPIRED for alias in ("portone", "portone-v2", "stripe")},
}

CELLS = [(alias, operation, fault) for alias in ALIASES for (operation, fault) in OUTCOMES]


def expected(alias: str, operation: str, fault: str) -> str:
    return PG_OUTCOMES.get((alias, operation, fault), OUTCOMES[(operation, fault)])


def paid_order(world, alias):
    checkout = world.checkout(0, alias)
    attempt = world.pay(checkout)
    assert world.come_back(0, checkout, attempt).status_code == 200
    world.deliver()
    return checkout, attempt


def arm(alias: str, operation: str, fault: str, match: str = "") -> None:
    params = {"delay": FAULT_DELAY} if fault.startswith("timeout") else {}
    control.arm_fault(alias, operation, fault, match=match, **params)


@pytest.mark.parametrize("alias, operation, fault", CELLS, ids=["-".join(cell) for cell in CELLS])
def test_fault_matrix(world, alias, operation, fault):
    if operation == "pay":
        checkout = world.checkout(0, alias)
        if fault == "decline" and alias in ("portone", "portone-v2", "stripe"):
            attempt = world.pay(checkout, outcome="decline")  # the window declines: no call of ours
        else:
            attempt = world.pay(checkout)
            if fault == "decline" and alias == "bootpay":
                control.arm_fault("bootpay", "confirm", "decline")
            else:
                arm(alias, "confirm" if alias in ("toss", "bootpay") else "lookup", fault)
        world.come_back(0, checkout, attempt)
        control.clear_faults()
        world.deliver()
    elif operation in ("refund", "partial"):
        checkout, attempt = paid_order(world, alias)
        arm(alias, "cancel", fault)
        world.staff_cancel(checkout.order_pk, 5000 if operation == "partial" else payments.FULL)
        control.clear_faults()
        world.deliver()
    else:
        checkout = world.checkout(0, alias)
        params = {"seconds": 30} if fault == "delay" else {}
        if alias == "toss":
            # Toss approves only on the shop's confirm: what only its webhooks tell is a deposit.
            account = world.pay(checkout, account=True)
            world.come_back(0, checkout, account)
            control.arm_fault(alias, "webhook", fault, **({"count": 2} if fault == "reorder" else {}), **params)
            world.deposit(account)
        else:
            control.arm_fault(alias, "webhook", fault, **({"count": 2} if fault == "reorder" else {}), **params)
            attempt = world.pay(checkout, separately=False)  # approved in the window; the buyer never comes back
            if alias == "bootpay":
                world.beacon(checkout, attempt)  # the window reports its receipt first thing
        world.deliver()
    if fault.startswith("timeout"):
        time.sleep(FAULT_DELAY - READ_TIMEOUT + 0.3)  # the PG's late answer goes out (the cron comes minutes later)
    world.reconcile()  # the shop's cron, a few minutes later
    world.time_passes(minutes=31)  # then the hold's time is up
    world.reconcile()
    world.reconcile(deep=True)
    world.deliver()
    order = Booking.objects.get(pk=checkout.order_pk)
    assert order.status == expected(alias, operation, fault), (
        order.status,
        list(order.transactions.values_list("kind", "status", "error_code")),
    )
    assert not world.check(), world.check()
