"""The suite looking for lost money by itself: random buyers, PGs, faults and time, then every invariant.

A hypothesis ``RuleBasedStateMachine`` drives the test shop and the five
emulated PGs (:class:`~tests.soak.world.World`) over real HTTP: checkouts in
one or two tabs, payments by card or virtual account, declines and closed
windows, returns from the buyer's browser (or another one, or none), the
window's beacon, webhooks delivered, lost, duplicated, reordered or failed,
deposits and their reversal, cancels in the PG's dashboard, buyer and staff
cancels (partial and full), faults before and after the PG commits on every
call, a bug in the shop's own gateway code (``verify_webhook`` raising), and time passing (holds, confirm windows, virtual-account deadlines).
At the end of each sequence it delivers what is left, runs ``pgpay_reconcile``
(normal and ``--deep-since``) and checks every invariant of ``DESIGN.md``
against the shop's database **and** the sandbox's records (:meth:`World.check`).

A failing sequence is shrunk by hypothesis to a short list of steps: keep it
as a test in ``test_regressions.py``.

Budget and seed (``make soak BUDGET=2000 SEED=1``): ``PGPAY_SOAK_EXAMPLES``
sequences of up to ``PGPAY_SOAK_STEPS`` steps; ``--hypothesis-seed`` picks the
sequences. CI runs a small budget on PostgreSQL. SQLite cannot run it: the
live server and the test share one connection there, and it shows no row locks.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, multiple, rule, run_state_machine_as_test

from django_pgpay import webhooks

from .world import ALIASES, FAULT_DELAY, World

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="the stateful soak runs on PostgreSQL (or MariaDB): SQLite shares one connection with the live server",
    ),
]

EXAMPLES = int(os.environ.get("PGPAY_SOAK_EXAMPLES", "12"))
#: Sequences of the queued soak (a quarter of ``EXAMPLES`` unless set): each also runs workers.
QUEUED_EXAMPLES = int(os.environ.get("PGPAY_SOAK_QUEUED_EXAMPLES", str(max(1, EXAMPLES // 4))))
STEPS = int(os.environ.get("PGPAY_SOAK_STEPS", "20"))
ARTIFACTS = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts"))

#: Faults of a PG call (confirm, lookup, cancel): before or after the PG commits.
CALL_FAULTS = st.sampled_from([None, None, None, None, "error_before", "error_after", "malformed_after", "timeout_before", "timeout_after"])
WEBHOOK_FAULTS = st.sampled_from(["drop", "duplicate", "reorder", "delay"])

STATS: Counter = Counter(sequences=0, steps=0, violations=0, seconds=0.0)


class ShopMachine(RuleBasedStateMachine):
    """One sequence: a fresh seat, three buyers, the five PGs; random steps; then reconcile and check."""

    checkouts = Bundle("checkouts")
    attempts = Bundle("attempts")
    base = ""
    django_settings = None

    #: Webhooks and ``pgpay_reconcile --enqueue`` through a task queue (django-tasks-db) and its workers.
    queued = False

    def __init__(self):
        super().__init__()
        self.world = World(self.base, self.django_settings, buyers=3, places=40, queued=self.queued)
        self.started = time.monotonic()
        STATS["sequences"] += 1

    def _step(self):
        STATS["steps"] += 1

    def _arm(self, alias, operation, fault, match):
        from django_pgpay.sandbox import control

        if fault is None:
            return
        params = {"delay": FAULT_DELAY} if fault.startswith("timeout") else {}
        control.arm_fault(alias, operation, fault, match=match, **params)

    # --- buyers ---------------------------------------------------------------------

    @rule(target=checkouts, buyer=st.integers(0, 2), alias=st.sampled_from(ALIASES))
    def checkout(self, buyer, alias):
        self._step()
        made = self.world.checkout(buyer, alias)
        return multiple() if made is None else (buyer, made)

    @rule(
        target=attempts,
        checkout=checkouts,
        outcome=st.sampled_from(["pay", "pay", "pay", "decline", "close"]),
        account=st.booleans(),
        separately=st.booleans(),
        back=st.sampled_from(["buyer", "buyer", "other browser", "never"]),
        fault=CALL_FAULTS,
    )
    def pay(self, checkout, outcome, account, separately, back, fault):
        self._step()
        from django_pgpay.sandbox.base import ApiError

        buyer, made = checkout
        try:
            attempt = self.world.pay(made, outcome=outcome, account=account and made.alias != "stripe", separately=separately)
        except (ApiError, Exception) as exc:  # noqa: BLE001 - the window refuses (the session is not open any more ...)
            if "not open" in str(exc) or isinstance(exc, ApiError):
                return multiple()
            raise
        if made.alias == "bootpay" and attempt.payment_id:
            self.world.beacon(made, attempt)  # the template reports the receipt id first thing
        if back != "never":
            operation = "confirm" if made.alias in ("toss", "bootpay") else "lookup"
            self._arm(made.alias, operation, fault, made.order_number if made.alias != "bootpay" else attempt.payment_id)
            self.world.come_back(buyer if back == "buyer" else None, made, attempt)
            from django_pgpay.sandbox import control

            control.clear_faults(made.alias)
        return (buyer, made, attempt)

    @rule(attempt=attempts)
    def reload_the_return_page(self, attempt):
        self._step()
        buyer, made, tried = attempt
        self.world.come_back(buyer, made, tried)

    @rule(checkout=checkouts)
    def the_back_button_posts_the_form_again(self, checkout):
        self._step()
        buyer, made = checkout
        problem = self.world.post_the_form_again(buyer, made)
        assert problem is None, problem

    @rule(checkout=checkouts, amount=st.sampled_from([None, "1000", "5,000", "19999", "20000"]), fault=CALL_FAULTS)
    def buyer_cancels(self, checkout, amount, fault):
        self._step()
        from django_pgpay.sandbox import control

        buyer, made = checkout
        self._arm(made.alias, "cancel", fault, made.order_number if made.alias not in ("bootpay", "portone") else "")
        response = self.world.buyer_cancel(buyer, made.order_number, amount)
        control.clear_faults(made.alias)
        assert response.status_code < 500, response.text[:300]

    @rule(checkout=checkouts, amount=st.sampled_from([None, 1000, 3000, 20000]), fault=CALL_FAULTS)
    def staff_refunds(self, checkout, amount, fault):
        self._step()
        from django_pgpay import payments
        from django_pgpay.sandbox import control

        _buyer, made = checkout
        self._arm(made.alias, "cancel", fault, made.order_number if made.alias not in ("bootpay", "portone") else "")
        self.world.staff_cancel(made.order_pk, payments.FULL if amount is None else amount)
        control.clear_faults(made.alias)

    # --- the PGs ------------------------------------------------------------------------

    @rule(alias=st.sampled_from(ALIASES), kind=WEBHOOK_FAULTS)
    def a_webhook_misbehaves(self, alias, kind):
        self._step()
        from django_pgpay.sandbox import control

        params = {"seconds": 30} if kind == "delay" else {}
        control.arm_fault(alias, "webhook", kind, **params)

    @rule(alias=st.sampled_from(ALIASES), deliveries=st.sampled_from([1, 2, 20]))
    def the_shops_gateway_code_breaks(self, alias, deliveries):
        """A bug in the shop's own gateway code (not the PG): its next deliveries raise TypeError."""
        self._step()
        self.world.gateway_bug(alias, deliveries)

    @rule()
    def webhooks_arrive(self):
        self._step()
        self.world.deliver()

    @rule(attempt=attempts)
    def deposit_arrives(self, attempt):
        self._step()
        _buyer, _made, tried = attempt
        if tried.account:
            self.world.deposit(tried)

    @rule(attempt=attempts)
    def the_bank_reverses_a_deposit(self, attempt):
        self._step()
        _buyer, made, tried = attempt
        if made.alias == "toss" and tried.account:
            self.world.reverse_deposit(tried)

    @rule(attempt=attempts, amount=st.sampled_from([None, 2000, 5000]))
    def cancelled_in_the_pgs_dashboard(self, attempt, amount):
        self._step()
        _buyer, _made, tried = attempt
        if tried.payment_id:
            self.world.pg_cancel(tried, amount)

    # --- time and the shop's cron -----------------------------------------------------------

    @rule(minutes=st.sampled_from([5, 11, 31, 60 * 24 * 8]))
    def time_passes(self, minutes):
        self._step()
        self.world.time_passes(minutes=minutes)

    @rule(deep=st.booleans())
    def cron_reconciles(self, deep):
        self._step()
        self.world.reconcile(deep=deep)

    def teardown(self):
        from django_pgpay.sandbox import control

        world = self.world
        try:
            control.clear_faults()
            world.fix_bugs()
            world.wait_for_the_pg()  # reconciliation runs later than a timed-out call's end at the PG
            for _ in range(2):
                world.deliver()
                world.settle()  # the workers run what the deliveries queued (nothing without a queue)
                world.reconcile()
                world.settle()
            world.reconcile(deep=True)
            world.deliver()
            world.settle()
            if world.unprocessed_deliveries():
                # Tasks the queue lost: the next cron run after webhooks.QUEUE_TIMEOUT processes them.
                STATS["deliveries whose task was lost"] += len(world.unprocessed_deliveries())
                world.time_passes(minutes=31)
            if world.failed_by_bugs():
                # Failed by the bug, now fixed: their next try comes after their backoff (at most 2**7 minutes).
                STATS["deliveries failed by a gateway bug"] += len(world.failed_by_bugs())
                world.time_passes(minutes=2 ** (webhooks.MAX_ATTEMPTS - 1) + 1)
            world.reconcile()
            world.settle()
            STATS["deliveries broken by a gateway bug"] += world.bug_hits
            problems = world.check()
            STATS["violations"] += len(problems)
            assert not problems, "\n".join(problems)
        finally:
            STATS["seconds"] += time.monotonic() - self.started
            if world.queued:
                for key, n in world.queue_counts.items():
                    STATS[key] += n
            world.close()


class QueuedShopMachine(ShopMachine):
    """The same sequences with a task queue: webhooks are answered at once and applied by workers.

    Deliveries are stored, screened and enqueued by the webhook view (django-tasks-db on the
    test's database); one or two workers at once run what is queued whenever the machine
    says so, in any order with the buyers, the PGs, time and cron; cron fans the orders out
    with ``--enqueue``; and the queue may lose a task after the PG was answered 200. Besides
    every invariant, :meth:`World.check` wants no task that raised and no delivery left
    unprocessed.
    """

    queued = True

    @rule(workers=st.sampled_from([1, 2]))
    def workers_run(self, workers):
        self._step()
        self.world.run_workers(workers)

    @rule(deep=st.booleans())
    def cron_enqueues(self, deep):
        self._step()
        self.world.reconcile_enqueued(deep=deep)

    @rule(lose=st.sampled_from([False, False, True]))
    def webhooks_arrive(self, lose):
        """The PG's deliveries are answered 200 and queued; now and then the queue loses one of them."""
        self._step()
        self.world.deliver()
        if lose:
            self.world.lose_a_task()


def run_soak(machine, live_server, settings, *, examples: int, summary_name: str):
    settings.ROOT_URLCONF = "tests.urls"
    machine.base = live_server.url
    machine.django_settings = settings
    STATS.clear()
    STATS.update(sequences=0, steps=0, violations=0, seconds=0.0)
    started = time.monotonic()
    try:
        run_state_machine_as_test(machine, settings=settings_for_budget(examples))
    finally:
        summary = {**STATS, "seconds": round(time.monotonic() - started, 1), "examples": examples, "max_steps": STEPS}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / summary_name).write_text(json.dumps(summary, indent=2))
        print(f"\n{summary_name.removesuffix('.json')}: {summary}")


def test_no_money_is_lost_or_stranded_whatever_happens(live_server, transactional_db, settings):
    run_soak(ShopMachine, live_server, settings, examples=EXAMPLES, summary_name="soak-summary.json")


def test_with_a_task_queue_no_delivery_is_lost_or_applied_twice(live_server, transactional_db, settings):
    pytest.importorskip("django_tasks_db", reason="the queued soak runs the tasks through django-tasks-db")
    run_soak(QueuedShopMachine, live_server, settings, examples=QUEUED_EXAMPLES, summary_name="soak-queued-summary.json")


def settings_for_budget(examples: int = EXAMPLES):
    return settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink] if os.environ.get("PGPAY_SOAK_SHRINK", "1") == "1" else [Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
