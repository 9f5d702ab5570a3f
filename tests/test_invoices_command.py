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
