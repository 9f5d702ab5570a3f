"""``manage.py pgpay_reconcile``: bring orders in step with their PGs.

Visits, in every concrete order model, the orders that
:func:`django_pgpay.reconciliation.plan` selects (open ledger rows, rows that
need attention, unpaid orders whose time is up, and with ``--deep-since``
every order touched since then) and runs :func:`django_pgpay.payments.reconcile`
on each; then processes again the webhook deliveries that failed, and those
whose task was lost (:func:`django_pgpay.webhooks.retry_failed`). Safe from cron while the site
serves: every change is made under the order's row lock and only applies what
the PG reports, so runs may overlap and repeat.

Each order is isolated: one the PG cannot read (or that fails for any reason)
is reported and skipped, the run goes on, and that order is visited again
after a growing backoff, behind the others.

The summary line counts money that needs a person (``needs attention``) and
webhook deliveries given up in the last day (:func:`django_pgpay.webhooks.given_up`);
``--check`` exits with status 2 when there is any, or when an order could not
be reconciled, so a monitoring job notices.

Options that would quietly do less than asked are refused by name: an unknown
``--gateway``, an option given with no value (``--deep-since ""``, a cron
line whose variable is unset) and a ``--deep-since`` after now (a mistyped
year, which would look back at nothing). A model named twice is visited once.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from django_pgpay import checkout_locks, conf, ledger, reconciliation, tasks, webhooks
from django_pgpay.exceptions import ConfigurationError
from django_pgpay.management.moments import parse_moment
from django_pgpay.orders import order_models


def at_least_zero(value: str) -> int:
    """``--limit``: a whole number, 0 or more (argparse's ``type``)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is below 0 (0 visits every order)")
    return number


def parse_since(value: str) -> datetime:
    """``7d``, ``12h``, ``30m``, an ISO date or an ISO datetime (local time when naive), not after now."""
    return parse_moment(value, "--deep-since", durations=True, past_only=True).start


class Command(BaseCommand):
    help = (
        "Look up orders with open ledger rows (and unpaid orders past their time) at their PG, apply what it says, "
        "expire abandoned ones, and process failed (or never processed) webhook deliveries again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--deep-since",
            metavar="WHEN",
            help="Also look up every order modified since WHEN (7d, 12h, 30m or an ISO date): finds cancels made in the PG's dashboard and payments whose webhook never came.",
        )
        parser.add_argument("--dry-run", action="store_true", help="List the orders that would be visited; call no PG, change nothing.")
        parser.add_argument("--gateway", action="append", metavar="ALIAS", help="Only orders of this gateway alias (repeatable).")
        parser.add_argument("--model", action="append", metavar="APP.MODEL", help="Only this order model (repeatable).")
        parser.add_argument("--limit", type=at_least_zero, default=0, help="Visit at most this many orders per model (0: all).")
        parser.add_argument(
            "--no-webhooks", action="store_true", help="Do not process failed (or never processed) webhook deliveries again."
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Enqueue one task per order (django_pgpay.tasks.reconcile_order) for the workers instead of visiting them here.",
        )
        parser.add_argument("--fail-on-error", action="store_true", help="Exit with status 1 when an order could not be reconciled.")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit with status 2 when money needs attention, an order could not be reconciled or a webhook delivery was given up in the last day (for monitoring).",
        )

    def handle(self, *args, **options):
        deep_since = parse_since(options["deep_since"]) if options["deep_since"] is not None else None
        blank = next((label for label in options["model"] or () if not label.strip()), None)
        if blank is not None:
            raise CommandError(f"--model {blank!r}: give APP.MODEL (or leave --model out for every order model)")
        try:
            models = order_models(options["model"])
        except (ConfigurationError, LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        gateways = set(options["gateway"] or ())
        unknown = sorted(gateways - set(conf.gateway_aliases()))
        if unknown:
            # A typo in a cron line would otherwise reconcile nothing, every run, without a word.
            there = ", ".join(conf.gateway_aliases())
            named = ", ".join(alias if alias.strip() else repr(alias) for alias in unknown)
            raise CommandError(f"--gateway {named}: no such gateway in PGPAY['GATEWAYS'] (there: {there})")
        dry_run = options["dry_run"]
        enqueue = options["enqueue"] and not dry_run and tasks.queued(tasks.reconcile_order)
        if options["enqueue"] and not dry_run and not enqueue:
            self.stdout.write("--enqueue: no queueing TASKS backend is configured; the orders are reconciled here")
        verbose = options["verbosity"] >= 2
        counts: Counter = Counter()
        if not dry_run and (missing := checkout_locks.write_slots()):
            self.stdout.write(f"wrote back {missing} missing checkout lock row(s) (django_pgpay_checkoutlock)")

        for model in models if enqueue else ():
            pks = reconciliation.planned_pks(model, deep_since=deep_since, gateways=gateways, limit=options["limit"])
            calls = ((model._meta.label, pk if isinstance(pk, int) else str(pk), deep_since is not None) for pk in pks)
            counts["enqueued"] += tasks.enqueue_many(tasks.reconcile_order, calls)
        for model in () if enqueue else models:
            for order in reconciliation.plan(model, deep_since=deep_since, gateways=gateways, limit=options["limit"]):
                label = f"{model._meta.label} {order.order_number} [{order.gateway}]"
                counts["visited"] += 1
                if dry_run:
                    self.stdout.write(f"would visit {label} ({order.status})")
                    continue
                visit = reconciliation.visit(order, deep=deep_since is not None)
                if visit.error is not None:
                    self._failed(label, visit, counts)
                    if visit.outcome is None:
                        continue
                outcome = visit.outcome
                if outcome.changes:
                    counts["changed"] += 1
                    self.stdout.write(f"{label}: {', '.join(outcome.changes)} -> {outcome.order.status}")
                elif outcome.error is None:
                    counts["unchanged"] += 1
                    if verbose:
                        self.stdout.write(f"{label}: no change")

        if dry_run:
            self.stdout.write(f"dry run: {counts['visited']} order(s) would be visited")
            return
        if enqueue:
            self.stdout.write(f"enqueued {counts['enqueued']} order(s) for the workers")
        if enqueue and not options["no_webhooks"]:
            configured = set(conf.gateway_aliases())
            for event in webhooks.due_for_retry():
                # As retry_failed(): a delivery to an alias no longer configured waits (its task
                # could not build the gateway), rather than a task enqueued and failing at every run.
                if (not gateways or event.gateway in gateways) and event.gateway in configured:
                    tasks.enqueue(tasks.process_delivery, event.pk)
                    counts["webhooks"] += 1
        elif not options["no_webhooks"]:
            for receipt in webhooks.retry_failed(gateways=gateways or None):
                counts["webhooks"] += 1
                if receipt.accepted:
                    counts["webhooks applied"] += 1
                if verbose or receipt.accepted:
                    self.stdout.write(f"webhook #{receipt.event.pk} [{receipt.event.gateway}] processed again: {receipt.event.status}")

        attention = sum(ledger.attention_rows(model.get_transaction_model()).count() for model in models)
        given_up = [] if options["no_webhooks"] else [e for e in webhooks.given_up() if not gateways or e.gateway in gateways]
        summary = (
            f"reconciled {counts['visited']} order(s): {counts['changed']} changed, {counts['unchanged']} unchanged, "
            f"{counts['errors']} error(s); {counts['webhooks']} failed webhook deliver{'y' if counts['webhooks'] == 1 else 'ies'} "
            f"processed again ({counts['webhooks applied']} accepted); {attention} ledger row(s) need attention"
        )
        if given_up:
            summary += f"; {len(given_up)} webhook deliver{'y' if len(given_up) == 1 else 'ies'} given up"
        self.stdout.write(summary)
        for event in given_up[:50]:
            self.stderr.write(
                f"webhook delivery given up: #{event.pk} [{event.gateway}] {event.event_type or '-'} "
                f"order {event.order_number or '-'}, {event.attempts} attempt(s), received {event.received_at:%Y-%m-%d %H:%M}: {event.error}"
            )
        if attention:
            for model in models:
                for row in ledger.attention_rows(model.get_transaction_model()).select_related("order")[:50]:
                    self.stderr.write(
                        f"needs attention: {model._meta.label} {row.order.order_number} {row.kind} {row.amount} {row.currency} "
                        f"({row.pg_payment_id}): {row.error_code} {row.error_message}"
                    )
        if options["check"] and (attention or counts["errors"] or given_up):
            raise CommandError(
                f"{attention} ledger row(s) need attention, {counts['errors']} order(s) not reconciled, "
                f"{len(given_up)} webhook delivery(ies) given up",
                returncode=2,
            )
        if options["fail_on_error"] and counts["errors"]:
            raise CommandError(f"{counts['errors']} order(s) could not be reconciled")

    def _failed(self, label: str, visit, counts: Counter) -> None:
        counts["errors"] += 1
        state = visit.state
        self.stderr.write(f"{label}: {visit.message} (failure {state.failures}, next try after {state.next_attempt_at:%Y-%m-%d %H:%M})")
