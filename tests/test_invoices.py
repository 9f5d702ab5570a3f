"""PDF invoices: rendered by WeasyPrint and read back with pypdf; the view's permissions."""

import io
import shutil
import subprocess
import zipfile
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from django_pgpay import invoices, payments
from django_pgpay.invoices import vat_split

try:  # the pdf extra
    import weasyprint  # noqa: F401
except (ImportError, OSError) as exc:  # pragma: no cover - CI installs it
    pytestmark = pytest.mark.skip(reason=f"WeasyPrint is not importable ({exc}); install django-pgpay[pdf]")

from pypdf import PdfReader

SHOP = {
    "SHOP_NAME": "한우집 본점",
    "BUSINESS_NUMBER": "123-45-67890",
    "CEO": "홍길동",
    "ADDRESS": "서울특별시 강남구 테헤란로 1",
    "TEL": "02-123-4567",
}


@pytest.fixture
def artifacts():
    """``$PGPAY_ARTIFACTS_DIR`` (default ``artifacts/``), created."""
    from tests.conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def shop_details(settings):
    settings.PGPAY = {**settings.PGPAY, "INVOICE": SHOP}


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture
def pay(pg):
    def pay(order, method="카드"):
        payment_id = pg.authorize(order.order_number, order.amount)
        payments.confirm(order, payment_id=payment_id, amount=order.amount)
        type(order).objects.filter(pk=order.pk).update(method=method)
        order.refresh_from_db()
        return order

    return pay


@pytest.mark.parametrize(
    "total, supply, vat",
    [(20000, 18182, 1818), (11000, 10000, 1000), (1, 1, 0), (0, 0, 0), (15, 14, 1), (1000000000, 909090909, 90909091)],
)
def test_vat_split_adds_up_in_whole_won(total, supply, vat):
    assert vat_split(Decimal(total), "KRW") == (Decimal(supply), Decimal(vat))


def test_vat_split_in_cents():
    assert vat_split(Decimal("10.00"), "USD") == (Decimal("9.09"), Decimal("0.91"))


@pytest.mark.django_db
def test_one_invoice_in_korean_carries_the_receipt(make_booking, pay):
    order = pay(make_booking(amount=Decimal(20000), buyer_name="김철수"))
    with translation.override("ko"):
        pdf = invoices.render_invoice(order)
    (text,) = pages_text(pdf)
    for expected in (
        "한우집 예약", "공급가액", "18,182원", "부가세", "1,818원", "20,000원", "김철수",
        "한우집 본점", "123-45-67890", "홍길동", "카드", order.order_number, order.pg_payment_id,
    ):  # fmt: skip
        assert expected in text, expected


@pytest.mark.django_db
def test_english_labels_and_paid_time_in_the_site_time_zone(make_booking, pay):
    order = pay(make_booking())
    with translation.override("en"):
        (text,) = pages_text(invoices.render_invoice(order))
    assert "Supply value" in text and "VAT" in text and "Invoice" in text
    from django.utils import timezone

    assert timezone.localtime(order.paid_at).strftime("%Y-%m-%d %H:%M") in text  # Asia/Seoul


@pytest.mark.django_db
def test_cancelled_amount_and_balance(make_booking, pay):
    order = pay(make_booking(amount=Decimal(30000)))
    payments.cancel(order, Decimal(12000), reason="part")
    order.refresh_from_db()
    with translation.override("ko"):
        (text,) = pages_text(invoices.render_invoice(order))
    assert "-12,000원" in text and "18,000원" in text and "30,000원" in text
    assert "취소" in text


@pytest.mark.django_db
def test_merged_pdf_has_one_page_per_order_in_order(make_booking, pay, seat):
    seat.remain = 10
    seat.save()
    orders = [pay(make_booking(amount=Decimal(10000 + i * 1000))) for i in range(4)]
    pdf = invoices.render_invoices(orders)
    texts = pages_text(pdf)
    assert len(texts) == 4
    for order, text in zip(orders, texts):
        assert order.order_number in text
        assert f"₩{order.amount:,.0f}" in text


@pytest.mark.django_db
def test_zip_has_one_pdf_per_order(make_booking, pay, seat):
    seat.remain = 10
    seat.save()
    orders = [pay(make_booking(amount=Decimal(10000 + i))) for i in range(3)]
    archive = zipfile.ZipFile(io.BytesIO(invoices.zip_bytes(orders)))
    assert sorted(archive.namelist()) == sorted(f"invoice-{o.order_number}.pdf" for o in orders)
    for order in orders:
        (text,) = pages_text(archive.read(f"invoice-{order.order_number}.pdf"))
        assert order.order_number in text


@pytest.mark.django_db
def test_line_items_of_a_cart_order():
    from tests.testapp.models import CartOrder, Product

    order = CartOrder.objects.create(amount=Decimal(25000), order_name="장바구니")
    order.lines.create(product=Product.objects.create(name="김치", price=Decimal(5000)), price=Decimal(5000), quantity=3)
    order.lines.create(product=Product.objects.create(name="된장", price=Decimal(10000)), price=Decimal(10000), quantity=1)
    (text,) = pages_text(invoices.render_invoice(order))
    assert "김치" in text and "₩15,000" in text and "된장" in text and "₩10,000" in text


@pytest.mark.django_db
def test_parallel_batch_matches_the_serial_one(settings, make_booking, pay, seat):
    seat.remain = 10
    seat.save()
    orders = [pay(make_booking(amount=Decimal(10000 + i))) for i in range(5)]
    settings.PGPAY = {**settings.PGPAY, "INVOICE": {**SHOP, "PARALLEL_THRESHOLD": 2, "WORKERS": 2}}
    texts = pages_text(invoices.render_invoices(orders))
    assert [o.order_number in t for o, t in zip(orders, texts)] == [True] * 5
    assert len(texts) == 5


@pytest.mark.django_db
def test_a_broken_pool_falls_back_to_this_process(settings, make_booking, pay, seat, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    seat.remain = 10
    seat.save()
    orders = [pay(make_booking(amount=Decimal(10000 + i))) for i in range(3)]
    settings.PGPAY = {**settings.PGPAY, "INVOICE": {**SHOP, "PARALLEL_THRESHOLD": 1, "WORKERS": 2}}

    def broken(workers):
        raise BrokenProcessPool("a worker was killed")

    monkeypatch.setattr(invoices, "_get_pool", broken)
    texts = pages_text(invoices.render_invoices(orders))
    assert [o.order_number in t for o, t in zip(orders, texts)] == [True] * 3 and len(texts) == 3


@pytest.mark.django_db
def test_a_page_as_png(make_booking, pay, artifacts):
    """Rendered for a person to look at (Hangul must show, not boxes)."""
    if not shutil.which("pdftoppm"):
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    order = pay(make_booking(amount=Decimal(20000), buyer_name="김철수", buyer_email="buyer@example.com"))
    payments.cancel(order, Decimal(5000), reason="part")
    order.refresh_from_db()
    with translation.override("ko"):
        pdf = invoices.render_invoice(order)
    path = artifacts / "invoice-ko.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-singlefile", str(path), str(artifacts / "invoice-ko")], check=True)
    png = artifacts / "invoice-ko.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout if shutil.which("pdffonts") else "Nanum"
    assert "Nanum" in fonts or "Noto" in fonts


def test_long_unbroken_text_wraps_inside_its_box_and_cell(make_booking, pay, artifacts):
    """An attack review (7 December 2026): a 200-letter order name ran over the amount columns and a
    121-letter e-mail out of the buyer's box (no break point). Each now wraps where it stands."""
    import re

    email = ("x" * 60) + "@" + ("y" * 60) + ".com"
    order = pay(make_booking(amount=Decimal(20000), order_name="A" * 200, buyer_name="가" * 100, buyer_email=email))
    pdf = invoices.render_invoice(order)
    (artifacts / "invoice-long-text.pdf").write_bytes(pdf)
    lines = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).splitlines()
    runs = [len(run) for line in lines for run in re.findall(r"A{10,}", line)]
    assert sum(runs) >= 200 and max(runs) < 80, runs  # the name's column holds about 40 per line
    assert max(len(run) for line in lines for run in re.findall(r"y{10,}", line)) < 60  # the e-mail wraps in its box
    assert any("20,000" in line and "A" not in line for line in lines)  # the amount stands on its own
    if shutil.which("pdftoppm"):
        path = artifacts / "invoice-long-text.pdf"
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(path), str(artifacts / "invoice-long-text")], check=True)


# --- the customer's view -------------------------------------------------------------------


@pytest.mark.django_db
def test_owner_downloads_their_invoice(client, buyer, make_booking, pay):
    order = pay(make_booking())
    client.force_login(buyer)
    response = client.get(reverse("django_pgpay:invoice", args=[order.order_number]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="invoice-{order.order_number}.pdf"' in response["Content-Disposition"]
    assert order.order_number in pages_text(response.content)[0]


@pytest.mark.django_db
def test_the_invoice_url_names_the_orders_model_and_is_read_from_it_only(client, buyer, make_booking, pay):
    """``{% pgpay_invoice_url order %}`` is ``invoice/<app_label.model>/<number>/``; the view looks in that model only."""
    from django.template import Context, Template

    order = pay(make_booking())
    url = Template("{% load pgpay %}{% pgpay_invoice_url order %}").render(Context({"order": order}))
    assert url == f"/pay/invoice/testapp.booking/{order.order_number}/"
    assert url == reverse("django_pgpay:invoice", args=["testapp.booking", order.order_number])
    client.force_login(buyer)
    response = client.get(url)
    assert response.status_code == 200 and order.order_number in pages_text(response.content)[0]
    # Session, user, the order (one model), its lines: not one query per order model.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    order_reads = [q["sql"] for q in queries.captured_queries if "order_number" in q["sql"]]
    assert len(order_reads) == 1 and "testapp_booking" in order_reads[0], order_reads


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "model"),
    [
        *[("buyer", m) for m in ("testapp.cartorder", "auth.user", "nosuch.model", "testapp", "testapp.booking.x", "%00")],
        ("other_buyer", "testapp.booking"),  # the right model: the owner check is still there
        ("staff", "testapp.booking"),  # is_staff alone reads no one's invoice
    ],
)
def test_an_invoice_url_naming_another_model_or_someone_elses_order_is_404(request, client, make_booking, pay, who, model):
    order = pay(make_booking())
    client.force_login(request.getfixturevalue(who))
    response = client.get(f"/pay/invoice/{model}/{order.order_number}/")
    assert response.status_code == 404 and not response.content.startswith(b"%PDF")


@pytest.mark.django_db
def test_another_user_gets_404(client, other_buyer, make_booking, pay):
    order = pay(make_booking())
    client.force_login(other_buyer)
    assert client.get(reverse("django_pgpay:invoice", args=[order.order_number])).status_code == 404
    assert client.get(reverse("django_pgpay:invoice", args=["NOSUCHORDER1"])).status_code == 404


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client, make_booking, pay):
    order = pay(make_booking())
    url = reverse("django_pgpay:invoice", args=[order.order_number])
    response = client.get(url)
    assert response.status_code == 302
    assert "login" in response["Location"] and "next=" in response["Location"]


@pytest.mark.django_db
def test_staff_with_the_view_permission_gets_any_invoice(client, refund_staff, make_booking, pay):
    order = pay(make_booking())
    client.force_login(refund_staff)
    response = client.get(reverse("django_pgpay:invoice", args=[order.order_number]))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")


@pytest.mark.django_db
def test_staff_without_permissions_gets_no_invoice(client, staff, make_booking, pay):
    """Issue #13, point 1: is_staff alone does not read another buyer's invoice (name, e-mail, phone)."""
    order = pay(make_booking())
    client.force_login(staff)
    response = client.get(reverse("django_pgpay:invoice", args=[order.order_number]))
    assert response.status_code == 404 and not response.content.startswith(b"%PDF")


@pytest.mark.django_db
def test_unpaid_order_has_no_invoice(client, buyer, make_booking):
    order = make_booking()
    client.force_login(buyer)
    response = client.get(reverse("django_pgpay:invoice", args=[order.order_number]))
    assert response.status_code == 409
    assert b"There is no invoice for this order yet: it has not been paid." in response.content
    # An order that expired will never be paid: not "yet" (a browser walk read it in the admin).
    from django_pgpay import payments

    payments.expire(order)
    response = client.get(reverse("django_pgpay:invoice", args=[order.order_number]))
    assert response.status_code == 409 and b"There is no invoice for this order: it was never paid." in response.content


@pytest.mark.django_db
def test_unpaid_order_page_says_nothing_was_charged_and_links_back(client, buyer, make_booking):
    order = make_booking()
    client.force_login(buyer)
    page = client.get(reverse("django_pgpay:invoice", args=[order.order_number])).content.decode()
    assert "Nothing was charged." in page
    assert 'href="/"' in page


@pytest.mark.django_db
def test_a_paid_order_whose_invoice_cannot_be_made_is_not_told_nothing_was_charged(client, buyer, make_booking, pay, monkeypatch):
    from django_pgpay.exceptions import ConfigurationError

    def broken(orders, *, filename):
        raise ConfigurationError("no stylesheet")

    monkeypatch.setattr(invoices, "invoice_response", broken)
    order = pay(make_booking())
    client.force_login(buyer)
    response = client.get(reverse("django_pgpay:invoice", args=[order.order_number]))
    page = response.content.decode()
    assert response.status_code == 503
    assert "The invoice cannot be made right now" in page
    assert "Nothing was charged" not in page  # it was: the order is paid
    assert 'href="/"' in page


@pytest.mark.django_db
def test_post_is_not_allowed(client, buyer, make_booking, pay):
    order = pay(make_booking())
    client.force_login(buyer)
    assert client.post(reverse("django_pgpay:invoice", args=[order.order_number])).status_code == 405


# --- admin actions (called the way the admin calls them) -------------------------------------


@pytest.mark.django_db
def test_pdf_action_merges_the_selection(rf, staff, make_booking, pay, seat):
    from tests.testapp.models import Booking

    seat.remain = 10
    seat.save()
    orders = [pay(make_booking(amount=Decimal(10000 + i))) for i in range(3)]
    request = rf.post("/admin/")
    request.user = staff
    response = invoices.invoice_pdf_action(None, request, Booking.objects.filter(pk__in=[o.pk for o in orders]))
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="invoices-booking-')
    texts = pages_text(response.content)
    assert [o.order_number in t for o, t in zip(orders, texts)] == [True, True, True]
    assert str(invoices.invoice_pdf_action.short_description) == "Download invoices (one PDF)"


@pytest.mark.django_db
def test_zip_action_and_response(rf, staff, make_booking, pay):
    from tests.testapp.models import Booking

    order = pay(make_booking())
    request = rf.post("/admin/")
    request.user = staff
    response = invoices.invoice_zip_action(None, request, Booking.objects.all())
    assert response["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(response.content)).namelist() == [f"invoice-{order.order_number}.pdf"]
    response = invoices.invoice_response([order], filename="x.pdf")
    assert response["Content-Disposition"] == 'attachment; filename="x.pdf"'
    with translation.override("ko"):
        assert str(invoices.invoice_zip_action.short_description) == "영수증 내려받기 (PDF 묶음 ZIP)"


def test_stylesheet_and_fonts_are_made_once_per_thread():
    import threading

    assert invoices.stylesheet() is invoices.stylesheet()
    assert invoices.font_config() is invoices.font_config()
    other = {}
    thread = threading.Thread(target=lambda: other.update(css=invoices.stylesheet(), fonts=invoices.font_config()))
    thread.start()
    thread.join()
    assert other["css"] is not invoices.stylesheet() and other["fonts"] is not invoices.font_config()


def test_missing_stylesheet_names_the_setting(tmp_path):
    from django_pgpay.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=r'PGPAY\["INVOICE"\]\["STYLESHEET"\]'):
        invoices.stylesheet(tmp_path / "nope.css")


# --- through the real admin (django_pgpay.admin.OrderAdmin + this module, no stubs) -------------


@pytest.mark.django_db
def test_admin_selection_to_merged_pdf_and_order_page_button(admin_client, make_booking, pay, seat):
    seat.remain = 10
    seat.save()
    orders = [pay(make_booking(amount=Decimal(20000 + i * 1000))) for i in range(3)]
    changelist = "/admin/testapp/booking/"
    response = admin_client.post(
        changelist, {"action": "invoice_pdf", "_selected_action": [o.pk for o in orders]}, HTTP_ACCEPT_LANGUAGE="ko"
    )
    assert response["Content-Type"] == "application/pdf"
    texts = pages_text(response.content)
    assert len(texts) == 3
    for order in orders:
        (text,) = [t for t in texts if order.order_number in t]
        assert "한우집 예약" in text and "공급가액" in text and f"{order.amount:,.0f}원" in text
    response = admin_client.post(changelist, {"action": "invoice_zip", "_selected_action": [o.pk for o in orders]})
    assert len(zipfile.ZipFile(io.BytesIO(response.content)).namelist()) == 3
    response = admin_client.get(f"{changelist}{orders[0].pk}/invoice/")
    assert response["Content-Type"] == "application/pdf"
    assert orders[0].order_number in pages_text(response.content)[0]
