"""``manage.py pgpay_invoices``: PDF invoices of many orders, to one PDF, a ZIP or a folder.

Examples::

    manage.py pgpay_invoices --since 2026-11-01 --until 2026-12-01 --output november.pdf
    manage.py pgpay_invoices --model shop.CartOrder --zip invoices.zip
    manage.py pgpay_invoices 261122abcDEF 261122ghiJKL --dir out/ --language ko

Orders are chosen from every concrete order model (``--model`` narrows it),
by status (default: paid, partially cancelled and cancelled, i.e. every order
that was paid), by payment time (``--since`` / ``--until``, in the site's time
zone when naive) or by order number. They are rendered ``--batch`` at a time
(one WeasyPrint document per batch, see :mod:`django_pgpay.invoices`), with a
progress bar on stderr. A model named twice is rendered once.

Order numbers that are not rendered are listed on stderr with the reason:
paid but left out by ``--status`` / ``--since`` / ``--until``, or not found
(in the chosen models) or never paid. When order numbers were given and none
matched, the command fails (nothing was written). An option given with no
value (``--since ""``) and a range whose end is before its start are refused.
A PDF or a ZIP is written beside its name and renamed onto it when complete
(:mod:`django_pgpay.management.files`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation

from django_pgpay.exceptions import ConfigurationError
from django_pgpay.management import files
from django_pgpay.management.moments import parse_range
from django_pgpay.orders import order_models
from django_pgpay.status import PAID_STATUSES, OrderStatus


class Command(BaseCommand):
    help = "Write the PDF invoices of paid orders to one PDF (--output), a ZIP of PDFs (--zip) or a folder (--dir)."

    def add_arguments(self, parser):
        parser.add_argument("order_numbers", nargs="*", metavar="ORDER_NUMBER", help="Only these orders.")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--output", "-o", metavar="FILE.pdf", help="One PDF with every invoice (one per page section).")
        target.add_argument("--zip", metavar="FILE.zip", help="A ZIP with one PDF per order.")
        target.add_argument("--dir", metavar="DIR", help="A folder with one PDF per order (created if missing).")
        parser.add_argument("--model", action="append", metavar="APP.MODEL", help="Only this order model (repeatable).")
        parser.add_argument(
            "--status",
            action="append",
            choices=OrderStatus.values,
            help="Only orders in this status (repeatable; default: PAID, PARTIAL_CANCELED, CANCELED).",
        )
        parser.add_argument("--since", metavar="WHEN", help="Paid at or after WHEN (ISO date or datetime).")
        parser.add_argument("--until", metavar="WHEN", help="Paid before WHEN (a date includes that whole day).")
        parser.add_argument("--language", default=None, help="Language of the labels (default: LANGUAGE_CODE).")
        parser.add_argument("--batch", type=int, default=200, help="Orders rendered per WeasyPrint document (default 200).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def models(self, options) -> list:
        """The ``--model`` models (each once, in the order given), or every order model."""
        blank = next((label for label in options["model"] or () if not label.strip()), None)
        if blank is not None:
            raise CommandError(f"--model {blank!r}: give APP.MODEL (or leave --model out for every order model)")
        try:
            return order_models(options["model"])
        except (ConfigurationError, LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

    def select(self, options) -> list:
        models = self.models(options)
        statuses = options["status"] or sorted(PAID_STATUSES)
        unpaid = set(statuses) - set(PAID_STATUSES)
        if unpaid:
            raise CommandError(f"--status {', '.join(sorted(unpaid))}: only orders that were paid have invoices.")
        since, until = parse_range(options["since"], options["until"])
        querysets = []
        for model in models:
            queryset = model._default_manager.filter(status__in=statuses)
            if options["order_numbers"]:
                queryset = queryset.filter(order_number__in=options["order_numbers"])
            if since:
                queryset = queryset.filter(since.since("paid_at"))
            if until:
                queryset = queryset.filter(until.until("paid_at"))
            querysets.append(queryset.order_by("paid_at", "pk"))
        return querysets

    def handle(self, *args, **options):
        from django_pgpay import invoices

        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        language = self.language(options["language"])
        where = options["output"] or options["zip"] or options["dir"]
        if not where:
            raise CommandError("--output, --zip or --dir: give a file or folder name")
        querysets = self.select(options)
        total = sum(queryset.count() for queryset in querysets)
        if options["order_numbers"]:
            self.report_skipped(querysets, options)
        if not total and options["order_numbers"]:
            raise CommandError(f"None of the {len(set(options['order_numbers']))} order number(s) given matched; nothing written.")
        if not total:
            self.stderr.write("No orders matched; nothing written.")
            return
        # The target is made ready before the first invoice is rendered (a folder that does not
        # exist is an error now, not after an hour of rendering); a PDF or a ZIP is written
        # beside its name and put in its place when complete, so a failure leaves no half file.
        part = target_zip = target_dir = None
        try:
            if options["dir"]:
                target_dir = Path(options["dir"])
                target_dir.mkdir(parents=True, exist_ok=True)
            else:
                part = files.part_file(Path(where))
                if options["zip"]:
                    target_zip = zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED)
        except OSError as exc:
            files.discard(part)
            raise CommandError(f"cannot write {where}: {exc.strerror or exc}") from exc
        progress = self.progress(total, disable=options["no_progress"])
        pdfs: list[bytes] = []
        written = 0
        try:
            with translation.override(language):
                for batch in self.batches(querysets, options["batch"]):
                    if options["output"]:
                        pdfs.append(invoices.render_invoices(batch))
                    else:
                        for name, pdf in invoices.render_invoice_files(batch):
                            if target_zip is not None:
                                target_zip.writestr(name, pdf)
                            else:
                                (target_dir / name).write_bytes(pdf)
                    written += len(batch)
                    progress.update(len(batch))
            if target_zip is not None:
                target_zip.close()
            if options["output"]:
                part.write_bytes(pdfs[0] if len(pdfs) == 1 else invoices._merge(pdfs))
            if part is not None:
                os.replace(part, where)
                part = None
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:  # a full disk, a folder made read-only meanwhile
            raise CommandError(f"cannot write {where}: {exc.strerror or exc} ({written} of {total} rendered)") from exc
        finally:
            progress.close()
            if target_zip is not None:
                target_zip.close()
            files.discard(part)
        self.stdout.write(self.style.SUCCESS(f"{written} invoice(s) written to {where}"))

    @staticmethod
    def language(code: str | None) -> str:
        """``--language``, one of ``settings.LANGUAGES`` (or a variant of one); a typo is refused, not English."""
        if not code:
            return settings.LANGUAGE_CODE
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            there = ", ".join(language for language, _name in settings.LANGUAGES)
            raise CommandError(f"--language {code}: not one of the project's LANGUAGES ({there})") from None

    def report_skipped(self, querysets, options) -> None:
        """Name on stderr the given order numbers that will not be rendered, and why.

        A paid order of the chosen models that ``--status``, ``--since`` or
        ``--until`` leaves out says so (it was reported "not found" before);
        any other number is not in those models or was never paid.
        """
        given = list(dict.fromkeys(options["order_numbers"]))
        found = {n for qs in querysets for n in qs.values_list("order_number", flat=True)}
        missing = [n for n in given if n not in found]
        if not missing:
            return
        paid = set()
        for queryset in querysets:
            model = queryset.model
            paid |= set(
                model._default_manager.filter(order_number__in=missing, status__in=PAID_STATUSES).values_list("order_number", flat=True)
            )
        excluded = [n for n in missing if n in paid]
        if excluded:
            narrowed = "/".join(option for option in ("--status", "--since", "--until") if options[option[2:]] is not None)
            self.stderr.write(f"Not matched by {narrowed}, skipped: {', '.join(excluded)}")
        absent = [n for n in missing if n not in paid]
        if absent:
            self.stderr.write(f"Not found or never paid, skipped: {', '.join(absent)}")

    @staticmethod
    def batches(querysets, size: int):
        batch: list = []
        for queryset in querysets:
            for order in queryset.iterator(chunk_size=size):
                batch.append(order)
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def progress(self, total: int, *, disable: bool):
        from tqdm import tqdm

        # The raw stream: OutputWrapper.write() would end each of tqdm's "\r" updates with a newline.
        return tqdm(total=total, unit="invoice", file=self.stderr._out, disable=disable, dynamic_ncols=True)
