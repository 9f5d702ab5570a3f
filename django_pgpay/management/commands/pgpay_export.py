"""``manage.py pgpay_export``: orders as CSV, to a file or stdout, streamed.

The same export as the admin's CSV action (:mod:`django_pgpay.exports`), for
cron jobs and exports too large to download: rows are read in chunks, memory
stays flat whatever the number of orders. Columns are those of the model's
registered :class:`~django_pgpay.admin.OrderAdminMixin` admin (its
``csv_columns``) unless ``--columns`` names others.

The progress bar is written to stderr through Django's ``OutputWrapper`` (one
line rewritten in place) and only when the CSV goes to a file, so stdout stays
pure CSV. No extra dependency: a counter and a percentage need no more.
"""

from __future__ import annotations

import time

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from django_pgpay import conf, exports
from django_pgpay.exceptions import ConfigurationError
from django_pgpay.management.moments import parse_moment
from django_pgpay.orders import order_models
from django_pgpay.status import OrderStatus

DATE_FIELDS = ("created", "paid_at", "canceled_at")


class Progress:
    """``Exported 12,000 / 1,000,000 orders (1%)`` on one stderr line, redrawn at most 5 times a second."""

    def __init__(self, out, total: int):
        self.out = out
        self.total = total
        self.done = 0
        self.shown = 0.0

    def __call__(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.shown >= 0.2 or self.done >= self.total:
            self.shown = now
            self.draw()

    def draw(self) -> None:
        percent = 100 * self.done // self.total if self.total else 100
        self.out.write(f"\rExported {self.done:,} / {self.total:,} orders ({percent}%)", ending="")
        self.out.flush()

    def finish(self) -> None:
        self.draw()
        self.out.write("")


class Command(BaseCommand):
    help = "Export orders as CSV (UTF-8 with a BOM, Excel-friendly) to a file or stdout, streamed in chunks."

    def add_arguments(self, parser):
        parser.add_argument("--model", metavar="APP.MODEL", help="The order model (default: the project's only one).")
        parser.add_argument(
            "--status",
            action="append",
            metavar="STATUS",
            help=f"Only orders in this status (repeatable or comma-separated): {', '.join(OrderStatus.values)}.",
        )
        parser.add_argument("--gateway", action="append", metavar="ALIAS", help="Only orders of this gateway alias (repeatable).")
        parser.add_argument("--since", metavar="DATE", help="Only orders whose date (see --date-field) is on or after DATE.")
        parser.add_argument("--until", metavar="DATE", help="Only orders whose date is on or before DATE (a date: the whole day).")
        parser.add_argument("--date-field", choices=DATE_FIELDS, default="created", help="The date --since/--until look at.")
        parser.add_argument("--columns", metavar="A,B,...", help="Columns (built-in names or field paths) instead of the admin's.")
        parser.add_argument("--output", "-o", metavar="FILE", help="Write to FILE (default: stdout).")
        parser.add_argument("--no-bom", action="store_true", help="No UTF-8 byte order mark at the start.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (it only shows with --output).")
        parser.add_argument("--chunk-size", type=int, default=exports.DEFAULT_CHUNK_SIZE, help="Rows per database round trip.")

    def handle(self, *args, **options):
        model = self.get_model(options["model"])
        queryset = self.filter(model._default_manager.all(), options).order_by(*(model._meta.ordering or ["pk"]))
        columns = self.get_columns(model, options["columns"])
        prefetch = tuple(getattr(self.model_admin(model), "csv_prefetch_related", ()) or ())
        try:
            exports.resolve_columns(model, columns)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        bom = False if options["no_bom"] else None
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1")

        if not options["output"]:
            for chunk in exports.iter_csv(queryset, columns, bom=bom, chunk_size=options["chunk_size"], prefetch=prefetch):
                self.stdout.write(chunk, ending="")
            return

        progress = None
        if not options["no_progress"]:
            progress = Progress(self.stderr, queryset.count())
        try:
            with open(options["output"], "w", encoding="utf-8", newline="") as stream:
                exports.write_csv(queryset, stream, columns, bom=bom, chunk_size=options["chunk_size"], on_rows=progress, prefetch=prefetch)
        except OSError as exc:
            raise CommandError(f"cannot write {options['output']}: {exc.strerror or exc}") from exc
        if progress is not None:
            progress.finish()
        if options["verbosity"] >= 1:
            self.stderr.write(f"Wrote {options['output']}")

    def get_model(self, label):
        try:
            models = order_models([label] if label else None)
        except (ConfigurationError, LookupError, ValueError) as exc:
            raise CommandError(f"--model {label!r}: {exc}") from exc
        if not models:
            raise CommandError("This project has no concrete order model (a subclass of AbstractOrder).")
        if len(models) > 1:
            names = ", ".join(m._meta.label for m in models)
            raise CommandError(f"This project has several order models ({names}): choose one with --model.")
        return models[0]

    def filter(self, queryset, options):
        statuses = [s.strip().upper() for entry in options["status"] or () for s in entry.split(",") if s.strip()]
        unknown = sorted(set(statuses) - set(OrderStatus.values))
        if unknown:
            raise CommandError(f"--status {', '.join(unknown)}: expected {', '.join(OrderStatus.values)}")
        if statuses:
            queryset = queryset.filter(status__in=statuses)
        if options["gateway"]:
            queryset = queryset.filter(gateway__in=self.gateways(queryset.model, options["gateway"]))
        field = options["date_field"]
        if options["since"]:
            queryset = queryset.filter(parse_moment(options["since"], "--since").since(field))
        if options["until"]:
            queryset = queryset.filter(parse_moment(options["until"], "--until").until(field))
        return queryset

    def gateways(self, model, given) -> list[str]:
        """The ``--gateway`` aliases; one that is neither configured nor on any order is refused by name.

        A typo in a cron line (``--gateway tosss``) would otherwise export a
        header and nothing else, every month, without a word. An alias taken
        out of ``PGPAY["GATEWAYS"]`` still exports the orders it has.
        """
        aliases = [alias.strip() for alias in given if alias.strip()]
        unknown = set(aliases) - set(conf.gateway_aliases())
        if unknown:
            unknown -= set(model._base_manager.filter(gateway__in=unknown).values_list("gateway", flat=True).distinct())
        if unknown or not aliases:
            there = ", ".join(conf.gateway_aliases())
            named = ", ".join(sorted(unknown)) or repr("")
            raise CommandError(f"--gateway {named}: no such gateway in PGPAY['GATEWAYS'] (there: {there}) nor on any order")
        return aliases

    def model_admin(self, model):
        """The model's admin on ``admin.site`` (its ``csv_columns`` and ``csv_prefetch_related``), or None."""
        try:
            return admin.site.get_model_admin(model)
        except admin.sites.NotRegistered:
            return None

    def get_columns(self, model, text):
        if text:
            return [name.strip() for name in text.split(",") if name.strip()]
        return getattr(self.model_admin(model), "csv_columns", None) or exports.DEFAULT_COLUMNS
