"""``manage.py pgpay_export``: orders as CSV, to a file or stdout, streamed.

The same export as the admin's CSV action (:mod:`django_pgpay.exports`), for
cron jobs and exports too large to download: rows are read in chunks, memory
stays flat whatever the number of orders. Columns are those of the model's
registered :class:`~django_pgpay.admin.OrderAdminMixin` admin (its
``csv_columns``) unless ``--columns`` names others.

The progress bar is written to stderr through Django's ``OutputWrapper`` (one
line rewritten in place) and only when the CSV goes to a file, so stdout stays
pure CSV. No extra dependency: a counter and a percentage need no more.

``--output FILE`` is written beside FILE and renamed onto it when complete
(:mod:`django_pgpay.management.files`): an export that fails halfway keeps the
previous FILE whole. Arguments that would quietly export something else than
what was meant are refused: an option given with no value (``--status ""``,
a cron line whose variable is unset, which read as every status), an empty
``--columns``, a range whose end is before its start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from django_pgpay import conf, exports
from django_pgpay.exceptions import ConfigurationError
from django_pgpay.management import files
from django_pgpay.management.moments import parse_range
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
        target = options["output"]
        if target is not None and not target.strip():
            raise CommandError(f"--output {target!r}: give a file name (or leave --output out for stdout)")

        if target is None:
            for chunk in exports.iter_csv(queryset, columns, bom=bom, chunk_size=options["chunk_size"], prefetch=prefetch):
                self.stdout.write(chunk, ending="")
            return

        # Written beside the target and renamed onto it when complete: a failure halfway (a model's
        # get_line_items raising, a full disk) keeps the previous export whole. Made before the first
        # row is read, so a target that cannot be written is refused at once.
        try:
            part = files.part_file(Path(target))
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
        try:
            progress = None
            if not options["no_progress"]:
                progress = Progress(self.stderr, queryset.count())
            with open(part, "w", encoding="utf-8", newline="") as stream:
                exports.write_csv(queryset, stream, columns, bom=bom, chunk_size=options["chunk_size"], on_rows=progress, prefetch=prefetch)
            os.replace(part, target)
            part = None
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            files.discard(part)
        if progress is not None:
            progress.finish()
        if options["verbosity"] >= 1:
            self.stderr.write(f"Wrote {target}")

    def get_model(self, label):
        if label is not None and not label.strip():
            raise CommandError(f"--model {label!r}: give APP.MODEL (or leave --model out when the project has one order model)")
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
        statuses = []
        for entry in options["status"] or ():
            given = [status.strip().upper() for status in entry.split(",") if status.strip()]
            if not given:  # --status "" or ",": a variable left unset in a cron line, not "every status"
                raise CommandError(f"--status {entry!r}: give one or more of {', '.join(OrderStatus.values)}")
            statuses += given
        unknown = sorted(set(statuses) - set(OrderStatus.values))
        if unknown:
            raise CommandError(f"--status {', '.join(unknown)}: expected {', '.join(OrderStatus.values)}")
        if statuses:
            queryset = queryset.filter(status__in=statuses)
        if options["gateway"]:
            queryset = queryset.filter(gateway__in=self.gateways(queryset.model, options["gateway"]))
        field = options["date_field"]
        since, until = parse_range(options["since"], options["until"])
        if since is not None:
            queryset = queryset.filter(since.since(field))
        if until is not None:
            queryset = queryset.filter(until.until(field))
        return queryset

    def gateways(self, model, given) -> list[str]:
        """The ``--gateway`` aliases; one that is neither configured nor on any order is refused by name.

        A typo in a cron line (``--gateway tosss``) would otherwise export a
        header and nothing else, every month, without a word. An alias taken
        out of ``PGPAY["GATEWAYS"]`` still exports the orders it has.
        """
        there = ", ".join(conf.gateway_aliases())
        blank = next((alias for alias in given if not alias.strip()), None)
        if blank is not None:  # --gateway "$ALIAS" with the variable unset
            raise CommandError(f"--gateway {blank!r}: no such gateway in PGPAY['GATEWAYS'] (there: {there}) nor on any order")
        aliases = [alias.strip() for alias in given]
        unknown = set(aliases) - set(conf.gateway_aliases())
        if unknown:
            unknown -= set(model._base_manager.filter(gateway__in=unknown).values_list("gateway", flat=True).distinct())
        if unknown:
            raise CommandError(
                f"--gateway {', '.join(sorted(unknown))}: no such gateway in PGPAY['GATEWAYS'] (there: {there}) nor on any order"
            )
        return aliases

    def model_admin(self, model):
        """The model's admin on ``admin.site`` (its ``csv_columns`` and ``csv_prefetch_related``), or None."""
        try:
            return admin.site.get_model_admin(model)
        except admin.sites.NotRegistered:
            return None

    def get_columns(self, model, text):
        """``--columns`` as names, or the admin's ``csv_columns``; an empty list (``--columns ","``) is refused."""
        if text is None:
            return getattr(self.model_admin(model), "csv_columns", None) or exports.DEFAULT_COLUMNS
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names:  # it wrote an empty header and one blank line per order
            raise CommandError(f"--columns {text!r}: name at least one column (or leave --columns out for the admin's)")
        return names
