"""Invoices after refunds, read back with pypdf: VAT and supply value of the amount kept, and PNGs to look at.

Renders land in ``$PGPAY_ARTIFACTS_DIR/invoices/`` (PDF and a PNG of page 1 by pdftoppm).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from decimal import Decimal

import pytest
from django.utils import translation

from django_pgpay import invoices, payments
from tests.conftest import ARTIFACTS

try:  # the pdf extra
    import weasyprint  # noqa: F401
except (ImportError, OSError) as exc:  # pragma: no cover - CI installs it
    pytest.skip(f"WeasyPrint is not importable ({exc}); install django-pgpay[pdf]", allow_module_level=True)

from pypdf import PdfReader

pytestmark = pytest.mark.django_db

SHOP = {
    "SHOP_NAME": "한우집 본점",
    "BUSINESS_NUMBER": "123-45-67890",
    "CEO": "홍길동",
    "ADDRESS": "서울특별시 강남구 테헤란로 1",
    "TEL": "02-123-4567",
}


@pytest.fixture(autouse=True)
def shop_details(settings):
    settings.PGPAY = {**settings.PGPAY, "INVOICE": SHOP}


@pytest.fixture
def folder():
    path = ARTIFACTS / "invoices"
    path.mkdir(parents=True, exist_ok=True)
    return path


def keep(pdf: bytes, folder, name: str) -> str:
    """Write the PDF and a PNG of its first page; return the text of page 1."""
    target = folder / f"{name}.pdf"
    target.write_bytes(pdf)
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-singlefile", str(target), str(folder / name)], check=True)
        assert (folder / f"{name}.png").stat().st_size > 10_000
    (page,) = PdfReader(io.BytesIO(pdf)).pages
    return page.extract_text(extraction_mode="layout")


def figure(text: str, label: str) -> str:
    """The amount printed on the row of ``label`` (the text keeps the page's layout)."""
    match = re.search(r"(?:^|\s)" + re.escape(label) + r"\s{2,}(-?[₩$]?[\d,.]+원?)(?:\s|$)", text, re.MULTILINE)
    assert match, f"{label!r} not found in:\n{text}"
    return match.group(1)


@pytest.fixture
def paid_with_long_id(make_booking, pg):
    """Pay an order, refund ``refund`` of it (None: nothing, "all": everything), give it a Toss-like id."""

    def make(amount, refund=None):
        order = make_booking(amount=Decimal(amount), buyer_name="김철수")
        payment_id = pg.authorize(order.order_number, order.amount)
        payments.confirm(order, payment_id=payment_id, amount=order.amount)
        if refund is not None:
            payments.cancel(order, payments.FULL if refund == "all" else Decimal(refund), reason="환불")
        # A Toss-like paymentKey: long, with separators, to check where it wraps.
        type(order).objects.filter(pk=order.pk).update(pg_payment_id="tgen_20261122135941Jnn39_" + "x7Yq2ZpLk9Rw3Tm8Bv" * 3, method="카드")
        order.refresh_from_db()
        return order

    return make


def test_partially_refunded_invoice_splits_what_was_kept(paid_with_long_id, folder):
    order = paid_with_long_id(20000, refund=5000)
    with translation.override("ko"):
        text = keep(invoices.render_invoice(order), folder, "invoice-partially-refunded-ko")
    assert figure(text, "결제 금액") == "20,000원"
    assert figure(text, "취소 금액") == "-5,000원"
    assert figure(text, "잔액") == "15,000원"
    # 15,000원 kept: 13,636원 + 1,364원 (not 18,182 / 1,818 of the original 20,000원).
    assert figure(text, "공급가액") == "13,636원" and figure(text, "부가세") == "1,364원"
    assert "18,182" not in text and "환불 후 남은 금액" in text
    assert "부분 취소" in text and "카드" in text and "card" not in text


def test_an_invoice_with_no_refund_does_not_speak_of_refunds(paid_with_long_id, folder):
    order = paid_with_long_id(15000)
    with translation.override("ko"):
        text = keep(invoices.render_invoice(order), folder, "invoice-not-refunded-ko")
    assert "환불" not in text and "취소" not in text
    assert "결제금액(15,000원)" in text.replace("\n", "").replace(" ", "")


def test_each_partial_refund_has_its_own_cancel_time(make_booking, pg, folder):
    order = make_booking(amount=Decimal(20000), buyer_name="김철수")
    payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount), amount=order.amount)
    payments.cancel(order, Decimal(5000), reason="환불 1")
    payments.cancel(order, Decimal(3000), reason="환불 2")
    order.refresh_from_db()
    with translation.override("ko"):
        cancels = invoices.build_invoice(order).cancels
    assert [amount for _, amount in cancels] == ["5,000원", "3,000원"] and cancels[0][0] <= cancels[1][0]
    with translation.override("ko"):
        text = keep(invoices.render_invoice(order), folder, "invoice-two-refunds-ko")
    assert text.count("취소일시") == 2 and "(-5,000원)" in text and "(-3,000원)" in text
    assert figure(text, "잔액") == "12,000원" and "환불 후 남은 금액" in text


def test_fully_refunded_invoice_shows_zero_vat(paid_with_long_id, folder):
    order = paid_with_long_id(20000, refund="all")
    with translation.override("ko"):
        text = keep(invoices.render_invoice(order), folder, "invoice-refunded-ko")
    assert figure(text, "잔액") == "0원"
    assert figure(text, "공급가액") == "0원" and figure(text, "부가세") == "0원"
    assert "9,091" not in text and "909원" not in text
    assert "취소" in text


def test_english_invoice_and_the_ids_break_at_separators(paid_with_long_id, folder):
    order = paid_with_long_id(30000, refund=12000)
    with translation.override("en"):
        pdf = invoices.render_invoice(order)
        text = keep(pdf, folder, "invoice-partially-refunded-en")
    assert "₩18,000" in text and "₩16,364" in text and "₩1,636" in text and "Card" in text
    html = invoices.render_html([order])
    assert "tgen_<wbr>202611221359<wbr>41Jnn39_<wbr>" in html


def test_breakable_ids():
    assert str(invoices.breakable("pi_3Nx")) == "pi_<wbr>3Nx"
    assert str(invoices.breakable("abcdefghijklmnopqrstuvwxyz")) == "abcdefghijkl<wbr>mnopqrstuvwx<wbr>yz"
    assert str(invoices.breakable("<b>")) == "&lt;b&gt;"


def test_no_seller_block_without_seller_details(settings, paid_with_long_id):
    settings.PGPAY = {**settings.PGPAY, "INVOICE": {}}
    order = paid_with_long_id(10000)
    html = invoices.render_html([order])
    assert 'class="box seller"' not in html and "Shop" not in html.split("<body>")[1].split("Buyer")[0]


def test_korean_words_are_kept_whole_in_the_note():
    assert invoices.keep_words("단위로 반올림 (1 + 부가세율)") == "단\u2060위\u2060로 반\u2060올\u2060림 (1 + 부\u2060가\u2060세\u2060율)"
    assert invoices.keep_words("VAT 10%") == "VAT 10%"


@pytest.mark.django_db
def test_the_invoice_and_the_settlement_follow_one_vat_rule(settings, make_booking, pg):
    """An attack review (7 December 2026): a 110.00 USD order's invoice split out 10.00 of VAT while the
    settlement of the same money had none (KRW only). Both read PGPAY["INVOICE"]["VAT_CURRENCIES"]."""
    from django.utils import timezone

    from django_pgpay import invoices, payments, settlement
    from tests.testapp.models import Booking

    order = make_booking(amount=Decimal("110.00"), currency="USD")
    payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount, currency="USD"), amount=order.amount)
    order.refresh_from_db()
    today = timezone.localdate()
    invoice = invoices.build_invoice(order)
    (line,) = settlement.compute([Booking], today, today).lines
    assert not invoice.vat and invoice.vat_value == 0 and invoice.supply_value == Decimal("110.00")
    assert line.vat is None
    settings.PGPAY = {**settings.PGPAY, "INVOICE": {"VAT_CURRENCIES": ["KRW", "usd"]}}
    invoice = invoices.build_invoice(order)
    (line,) = settlement.compute([Booking], today, today).lines
    assert (invoice.supply_value, invoice.vat_value) == (line.supply, line.vat) == (Decimal("100.00"), Decimal("10.00"))
    settings.PGPAY = {**settings.PGPAY, "INVOICE": {"VAT_CURRENCIES": "KRW"}}  # a string, not a list
    from django_pgpay.checks import check_invoices

    assert "django_pgpay.E402" in [m.id for m in check_invoices()]
