"""``manage.py pgpay_invoices``: selection, the three outputs, errors."""

import io
import zipfile
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from django_pgpay import payments

try:
    import weasyprint  # noqa: F401
except (ImportError, OSError) as exc:  # pragma: no cover - CI installs it
    pytestmark = pytest.mark.skip(reason=f"WeasyPrint is not importable ({exc}); install django-pgpay[pdf]")

from pypdf import PdfReader


@pytest.fixture
def orders(make_booking, pg, seat):
    seat.remain = 10
    seat.save()
    paid = []
    for i in range(3):
        order = make_booking(amount=Decimal(10000 + i * 1000))
        payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount), amount=order.amount)
        paid.append(order)
    unpaid = make_booking()
    return paid, unpaid


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("pgpay_invoices", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_merged_pdf_of_every_paid_order(orders, tmp_path):
    paid, unpaid = orders
    target = tmp_path / "all.pdf"
    out, _ = run("--output", str(target))
    assert "3 invoice(s) written" in out
    texts = [page.extract_text() for page in PdfReader(target).pages]
    assert len(texts) == 3
    assert {o.order_number for o in paid} == {n for o in paid for n in [o.order_number] if any(n in t for t in texts)}
    assert not any(unpaid.order_number in t for t in texts)


@pytest.mark.django_db
def test_zip_and_dir_hold_one_pdf_per_order(orders, tmp_path):
    paid, _ = orders
    run("--zip", str(tmp_path / "x.zip"), "--batch", "2")
    names = sorted(zipfile.ZipFile(tmp_path / "x.zip").namelist())
    assert names == sorted(f"invoice-{o.order_number}.pdf" for o in paid)
    run("--dir", str(tmp_path / "out"), paid[0].order_number)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"invoice-{paid[0].order_number}.pdf"]


@pytest.mark.django_db
def test_order_numbers_and_model_filter(orders, tmp_path):
    paid, unpaid = orders
    out, err = run("--output", str(tmp_path / "x.pdf"), "--model", "testapp.Booking", paid[1].order_number, unpaid.order_number)
    assert "1 invoice(s) written" in out
    assert f"skipped: {unpaid.order_number}" in err
    assert len(PdfReader(tmp_path / "x.pdf").pages) == 1


@pytest.mark.django_db
def test_since_until_and_status(orders, tmp_path):
    out, err = run("--output", str(tmp_path / "x.pdf"), "--until", "2000-01-01")
    assert "No orders matched" in err and not (tmp_path / "x.pdf").exists()
    out, _ = run("--output", str(tmp_path / "x.pdf"), "--since", "2000-01-01", "--status", "PAID")
    assert "3 invoice(s)" in out


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--status", "READY"], "only orders that were paid"),
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--model", "testapp.Seat"], "is not a concrete AbstractOrder"),
        (["--batch", "0"], "--batch"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("pgpay_invoices", "--output", str(tmp_path / "x.pdf"), *args)


def test_a_target_is_required():
    with pytest.raises(CommandError, match="--output"):
        call_command("pgpay_invoices")


@pytest.mark.django_db
def test_progress_bar_on_stderr(orders, tmp_path):
    err = io.StringIO()
    call_command("pgpay_invoices", "--output", str(tmp_path / "x.pdf"), stdout=io.StringIO(), stderr=err)
    assert "3/3" in err.getvalue()


# --- targets that cannot be written: a clear error before any rendering, never a half file ---


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("--output", "missing-dir/x.pdf", "cannot write .*missing-dir/x.pdf: No such file or directory"),
        ("--zip", "missing-dir/x.zip", "cannot write .*missing-dir/x.zip: No such file or directory"),
        ("--output", ".", "is a folder"),
        ("--dir", "a-file/out", "cannot write .*a-file/out"),
    ],
)
def test_an_unwritable_target_is_refused_before_rendering(orders, tmp_path, monkeypatch, option, name, message):
    from django_pgpay import invoices

    (tmp_path / "a-file").write_text("not a folder")
    rendered = []
    monkeypatch.setattr(invoices, "render_invoices", lambda batch: rendered.append(batch))
    monkeypatch.setattr(invoices, "render_invoice_files", lambda batch: rendered.append(batch) or [])
    with pytest.raises(CommandError, match=message):
        run(option, str(tmp_path / name))
    assert rendered == []  # refused before the first invoice, not after the last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--output", "--zip"])
def test_a_failure_while_rendering_keeps_the_previous_file_whole(orders, tmp_path, monkeypatch, option):
    from django_pgpay import invoices
    from django_pgpay.exceptions import ConfigurationError

    target = tmp_path / "november.out"
    target.write_bytes(b"last month's, complete")

    def broken(batch):
        raise ConfigurationError("WeasyPrint is not installed")

    monkeypatch.setattr(invoices, "render_invoices", broken)
    monkeypatch.setattr(invoices, "render_invoice_files", broken)
    with pytest.raises(CommandError, match="WeasyPrint is not installed"):
        run(option, str(target), "--batch", "1")
    assert target.read_bytes() == b"last month's, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["november.out"]  # no .part left behind


@pytest.mark.django_db
def test_the_written_pdf_has_the_usual_permissions(orders, tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        run("--output", str(tmp_path / "x.pdf"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "x.pdf").stat().st_mode) == 0o644  # not the temporary file's 0600


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "message"), [("kr", r"--language kr: not one of the project's LANGUAGES \(en, ko\)"), ("", None)])
def test_language_typo_is_refused(orders, tmp_path, value, message):
    if message is None:
        assert "3 invoice(s)" in run("--output", str(tmp_path / "x.pdf"), "--language", value)[0]
        return
    with pytest.raises(CommandError, match=message):
        run("--output", str(tmp_path / "x.pdf"), "--language", value)


def test_an_empty_target_name_is_refused():
    with pytest.raises(CommandError, match="give a file or folder name"):
        call_command("pgpay_invoices", "--output", "")


# --- one invoice per order, whatever the options repeat; what was skipped and why ---


@pytest.mark.django_db
def test_a_repeated_model_renders_each_order_once(orders, tmp_path):
    """``--model testapp.Booking --model testapp.booking`` wrote every invoice twice (ZIP duplicate names)."""
    paid, _ = orders
    out, _ = run("--zip", str(tmp_path / "x.zip"), "--model", "testapp.Booking", "--model", "testapp.booking")
    assert "3 invoice(s) written" in out
    assert sorted(zipfile.ZipFile(tmp_path / "x.zip").namelist()) == sorted(f"invoice-{o.order_number}.pdf" for o in paid)


def run_failing(*args):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("pgpay_invoices", *args, "--no-progress", stdout=out, stderr=err)
    return str(raised.value), err.getvalue()


@pytest.mark.django_db
def test_skipped_order_numbers_say_why(orders, tmp_path):
    """A paid order left out by --since was reported "Not found or never paid"."""
    import datetime

    from tests.testapp.models import Booking

    paid, unpaid = orders
    Booking.objects.filter(pk=paid[1].pk).update(paid_at=datetime.datetime(2020, 5, 1, tzinfo=datetime.timezone.utc))
    numbers = [paid[0].order_number, paid[1].order_number, unpaid.order_number, "NOSUCHORDER"]
    out, err = run("--output", str(tmp_path / "x.pdf"), "--since", "2025-01-01", *numbers)
    assert "1 invoice(s) written" in out and len(PdfReader(tmp_path / "x.pdf").pages) == 1
    assert f"Not matched by --since, skipped: {paid[1].order_number}\n" in err
    assert f"Not found or never paid, skipped: {unpaid.order_number}, NOSUCHORDER\n" in err
    # Only the options given are named; another model's order is not found in the one chosen.
    out, err = run(
        "--output", str(tmp_path / "x.pdf"), "--status", "PAID", "--until", "2025-01-01", paid[0].order_number, paid[1].order_number
    )
    assert "1 invoice(s) written" in out
    assert f"Not matched by --status/--until, skipped: {paid[0].order_number}\n" in err
    message, err = run_failing("--output", str(tmp_path / "y.pdf"), "--model", "testapp.CartOrder", paid[0].order_number)
    assert message == "None of the 1 order number(s) given matched; nothing written."
    assert f"Not found or never paid, skipped: {paid[0].order_number}\n" in err and "Not matched" not in err


@pytest.mark.django_db
def test_order_numbers_none_of_which_matched_are_an_error(orders, tmp_path):
    """Exit 0 with "No orders matched" hid a cron job that invoiced nothing."""
    paid, unpaid = orders
    message, err = run_failing("--output", str(tmp_path / "x.pdf"), "--until", "2000-01-01", paid[0].order_number, unpaid.order_number)
    assert message == "None of the 2 order number(s) given matched; nothing written."
    assert f"Not matched by --until, skipped: {paid[0].order_number}\n" in err
    assert f"Not found or never paid, skipped: {unpaid.order_number}\n" in err
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2030-01-01", "--until", "2020-01-01"), r"^--until '2020-01-01' is before --since '2030-01-01'"),
        (("--since", ""), r"^--since '': use a date"),
        (("--until", ""), r"^--until '': use a date"),
        (("--model", ""), r"^--model '': give APP.MODEL"),
        (("--model", "testapp.Booking", "--model", " "), r"^--model ' ': give APP.MODEL"),
        (("--status", ""), r"--status: invalid choice: ''"),
    ],
)
def test_a_reversed_range_or_an_empty_option_is_refused(orders, tmp_path, args, message):
    """Each of these answered "No orders matched" (or every order) and exit status 0."""
    with pytest.raises(CommandError, match=message):
        run("--output", str(tmp_path / "x.pdf"), *args)
    assert list(tmp_path.iterdir()) == []
