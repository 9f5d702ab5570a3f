"""``manage.py pgpay_reconcile``: bring orders in step with their PGs.

Visits, in every concrete order model, the orders that
:func:`django_pgpay.payments.orders_to_reconcile` selects (open ledger rows,
unpaid orders whose time is up, and with ``--deep-since`` every order touched
since then that holds or awaits money) and runs
:func:`django_pgpay.payments.reconcile` on each. Safe from cron while the site
serves: every change is made under the order's row lock and only applies what
the PG reports, so runs may overlap and repeat.

A PG that cannot be reached is reported and its remaining orders are skipped
until the next run; nothing is changed for them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from django_pgpay import payments
from django_pgpay.exceptions import ConfigurationError, GatewayUnavailable, PgPayError
from django_pgpay.management.moments import parse_moment
from django_pgpay.orders import order_models

def parse_since(value: str) -> datetime:
    """``7d``, ``12h``, ``30m``, an ISO date or an ISO datetime (local time when naive)."""
    return parse_moment(value, "--deep-since", durations=True).start


class Command(BaseCommand):
    help = "Look up orders with open ledger rows (and unpaid orders past their time) at their PG, apply what it says, expire abandoned ones."

    def add_arguments(self, parser):
        parser.add_argument(
            "--deep-since",
            metavar="WHEN",
            help="Also look up every order modified since WHEN (7d, 12h, 30m or an ISO date): finds cancels made in the PG's dashboard.",
        )
        parser.add_argument("--dry-run", action="store_true", help="List the orders that would be visited; call no PG, change nothing.")
        parser.add_argument("--gateway", action="append", metavar="ALIAS", help="Only orders of this gateway alias (repeatable).")
        parser.add_argument("--model", action="append", metavar="APP.MODEL", help="Only this order model (repeatable).")
        parser.add_argument("--limit", type=int, default=0, help="Visit at most this many orders per model (0: all).")
        parser.add_argument("--fail-on-error", action="store_true", help="Exit with status 1 when an order could not be reconciled.")

    def handle(self, *args, **options):
        deep_since = parse_since(options["deep_since"]) if options["deep_since"] else None
        try:
            models = order_models(options["model"])
        except (ConfigurationError, LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        gateways = set(options["gateway"] or ())
        dry_run = options["dry_run"]
        verbose = options["verbosity"] >= 2
        counts: Counter = Counter()
        down: dict[str, str] = {}

        for model in models:
            queryset = payments.orders_to_reconcile(model, deep_since=deep_since)
            if gateways:
                queryset = queryset.filter(gateway__in=gateways)
            if options["limit"]:
                queryset = queryset[: options["limit"]]
            for pk in list(queryset.values_list("pk", flat=True)):
                order = model._base_manager.filter(pk=pk).first()
                if order is None:
                    continue
                label = f"{model._meta.label} {order.order_number} [{order.gateway}]"
                counts["visited"] += 1
                if dry_run:
                    self.stdout.write(f"would visit {label} ({order.status})")
                    continue
                if order.gateway in down:
                    counts["skipped"] += 1
                    continue
                try:
                    outcome = payments.reconcile(order, deep=deep_since is not None)
                except GatewayUnavailable as exc:
                    down[order.gateway] = exc.code
                    counts["errors"] += 1
                    self.stderr.write(f"{label}: PG unavailable ({exc.code}); its other orders are skipped this run")
                    continue
                except PgPayError as exc:
                    counts["errors"] += 1
                    self.stderr.write(f"{label}: {exc.code}: {exc}")
                    continue
                except Exception as exc:  # noqa: BLE001 - one order must not stop the run
                    counts["errors"] += 1
                    self.stderr.write(f"{label}: {type(exc).__name__}: {exc}")
                    continue
                if outcome.error is not None:
                    counts["errors"] += 1
                    self.stderr.write(f"{label}: {outcome.error.code}: {outcome.error}")
                if outcome.changes:
                    counts["changed"] += 1
                    self.stdout.write(f"{label}: {', '.join(outcome.changes)} -> {outcome.order.status}")
                else:
                    counts["unchanged"] += 1
                    if verbose:
                        self.stdout.write(f"{label}: no change")

        if dry_run:
            self.stdout.write(f"dry run: {counts['visited']} order(s) would be visited")
            return
        summary = (
            f"reconciled {counts['visited']} order(s): {counts['changed']} changed, {counts['unchanged']} unchanged, "
            f"{counts['errors']} error(s), {counts['skipped']} skipped"
        )
        if down:
            summary += "; unavailable: " + ", ".join(f"{alias} ({code})" for alias, code in sorted(down.items()))
        self.stdout.write(summary)
        if options["fail_on_error"] and counts["errors"]:
            raise CommandError(f"{counts['errors']} order(s) could not be reconciled")
