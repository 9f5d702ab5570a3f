"""The order admin: list, search, filters, CSV action, order page, webhook log, permissions, invoice hooks."""

from __future__ import annotations

import csv
import io
import types
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from django_pgpay import admin as pgpay_admin
from django_pgpay import payments
from django_pgpay.models import WebhookEvent
from django_pgpay.status import DeliveryStatus

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/testapp/booking/"


@pytest.fixture
def paid(pay_booking):
    return pay_booking


def staff_with(django_user_model, username, *codenames):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def test_changelist_columns_badges_and_money(admin_client, paid, make_booking):
    kim = paid(buyer_name="김민수", buyer_email="kim@example.com")
    payments.cancel(kim, Decimal(5000), reason="part")
    ready = make_booking(buyer_name="Lee")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    for label in ("Order", "Amount", "Status / PG", "Buyer", "When"):
        assert f">{label}</a>" in page
    assert "Fake PG (for tests) · Card" in page  # the PG and the method under the badge
    assert kim.order_number in page and ready.order_number in page
    assert "₩20,000" in page and "−₩5,000" in page and "20000.000" not in page
    assert '<span class="pgpay-badge pgpay-badge-orange">Partially cancelled</span>' in page
    assert '<span class="pgpay-badge pgpay-badge-grey">Awaiting payment</span>' in page
    assert "Fake PG" in page  # the PG's name, not the alias
    assert "column-currency" not in page  # one currency: no currency column
    korean = admin_client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "20,000원" in korean and "−5,000원" in korean and "부분 취소" in korean


def test_currency_column_only_with_several_currencies(admin_client, paid, make_booking):
    paid()
    assert "currency" not in admin_client.get(CHANGELIST).context["cl"].list_display
    make_booking(amount=Decimal("12.50"), currency="USD")
    response = admin_client.get(CHANGELIST)
    columns = list(response.context["cl"].list_display)
    assert columns[columns.index("display_amount") + 1] == "currency"
    assert "$12.50" in response.content.decode()


def found(client, **query) -> set:
    response = client.get(CHANGELIST, query)
    assert response.status_code == 200, response
    return {order.pk for order in response.context["cl"].result_list}


def test_search_by_prefix_names_phone_and_payment_id(admin_client, paid, make_booking):
    kim = paid(buyer_name="김민수", buyer_email="kim@example.com", buyer_phone="010-1234-5678")
    lee = make_booking(buyer_name="Lee Youngji", buyer_phone="+82 10 9876 5432")
    assert found(admin_client, q=kim.order_number) == {kim.pk}
    assert found(admin_client, q=kim.order_number[:10]) >= {kim.pk}  # a prefix
    assert found(admin_client, q=kim.order_number[3:]) == set()  # not the middle
    assert found(admin_client, q=kim.pg_payment_id) == {kim.pk}
    assert found(admin_client, q=kim.pg_payment_id[:12]) == {kim.pk}
    assert found(admin_client, q="김민") == {kim.pk}
    assert found(admin_client, q="KIM@EXAMPLE") == {kim.pk}
    assert found(admin_client, q="01012345678") == {kim.pk}  # digits only
    assert found(admin_client, q="1234-5678") == {kim.pk}
    assert found(admin_client, q="5678") == {kim.pk}
    assert found(admin_client, q="010-9876-5432") == {lee.pk}  # +82 10 ... is 010 ...
    assert found(admin_client, q="lee young") == {lee.pk}  # every word must match
    assert found(admin_client, q="lee 김민수") == set()
    assert found(admin_client, q="nobody") == set()
    # A lone quote was read as an empty phrase and listed every order (a browser walk).
    assert found(admin_client, q="'") == set() and found(admin_client, q='"') == set()
    assert found(admin_client, q='"lee young"') == {lee.pk}  # a quoted phrase is still one term


def test_search_by_what_was_sold_through_the_hook(admin_client, pg):
    from tests.testapp.models import CartOrder, Product

    kimchi, tofu = Product.objects.create(name="배추김치", price=Decimal(5000)), Product.objects.create(name="두부", price=Decimal(2000))
    one = CartOrder.objects.create(amount=Decimal(12000))
    one.lines.create(product=kimchi, price=Decimal(5000), quantity=2)
    one.lines.create(product=tofu, price=Decimal(2000), quantity=1)
    two = CartOrder.objects.create(amount=Decimal(4000))
    two.lines.create(product=tofu, price=Decimal(2000), quantity=2)
    url = "/admin/testapp/cartorder/"

    def cart_found(q):
        return {o.pk for o in admin_client.get(url, {"q": q}).context["cl"].result_list}

    assert cart_found("김치") == {one.pk}
    assert cart_found("두부") == {one.pk, two.pk}  # listed once each, though two lines match
    assert len(admin_client.get(url, {"q": "두부"}).context["cl"].result_list) == 2


def test_filters_status_gateway_and_date_ranges(admin_client, paid, make_booking):
    import datetime

    from tests.testapp.models import Booking

    kim, ready = paid(), make_booking()
    utc = datetime.timezone.utc
    # 2026-01-01 23:30 in Seoul is still January 1st there (14:30 UTC).
    Booking.objects.filter(pk=kim.pk).update(
        created=datetime.datetime(2026, 1, 1, 14, 30, tzinfo=utc), paid_at=datetime.datetime(2026, 1, 1, 15, 30, tzinfo=utc)
    )
    Booking.objects.filter(pk=ready.pk).update(created=datetime.datetime(2026, 1, 1, 15, 30, tzinfo=utc))  # Jan 2 in Seoul
    assert found(admin_client, status__exact="PAID") == {kim.pk}
    assert found(admin_client, status__exact="READY") == {ready.pk}
    assert found(admin_client, gateway="fake") == {kim.pk, ready.pk}
    assert found(admin_client, gateway="other") == set()
    assert found(admin_client, created__range__gte="2026-01-01", created__range__lte="2026-01-01") == {kim.pk}
    assert found(admin_client, created__range__gte="2026-01-02") == {ready.pk}
    assert found(admin_client, created__range__lte="2026-01-02") == {kim.pk, ready.pk}
    assert found(admin_client, paid_at__range__gte="2026-01-02", paid_at__range__lte="2026-01-02") == {kim.pk}
    page = admin_client.get(CHANGELIST).content.decode()
    assert 'name="created__range__gte"' in page and 'name="paid_at__range__lte"' in page
    assert "Last 7 days" in page and "Fake PG" in page


@pytest.mark.parametrize(
    "query",
    [
        {"created__range__gte": "2026-13-45"},
        {"created__range__lte": "9999-12-31"},  # its next midnight does not exist: was a 500
        {"paid_at__range__gte": "0001-01-01"},  # its midnight in Seoul is in year 0 in UTC
    ],
)
def test_a_bad_date_in_the_range_filter_is_refused_not_a_500(admin_client, paid, query):
    paid()
    response = admin_client.get(CHANGELIST, query)
    assert response.status_code == 302 and "e=1" in response["Location"]


@pytest.mark.parametrize(
    ("page", "key"),
    [
        (CHANGELIST, "status__exact"),
        (CHANGELIST, "gateway"),
        (CHANGELIST, "order_number"),  # a field lookup of the query string
        ("/admin/testapp/cartorder/", "status__exact"),
        ("/admin/django_pgpay/exportjob/", "state__exact"),
        ("/admin/django_pgpay/exportjob/", "kind__exact"),
        ("/admin/django_pgpay/webhookevent/", "status__exact"),
        ("/admin/django_pgpay/webhookevent/", "gateway"),
    ],
)
def test_a_nul_in_a_list_query_is_refused_not_a_500(admin_client, paid, page, key):
    # PostgreSQL refuses NUL in a text parameter: every one of these was a 500 there (found by
    # tests/fuzz's admin family); SQLite answered an empty list.
    paid()
    for value in ("\x00", "PAID\x00"):
        response = admin_client.get(page, {key: value})
        assert response.status_code == 302 and response["Location"].endswith("?e=1"), (page, key, value)


def test_the_change_page_is_the_order_page_and_read_only(admin_client, paid):
    booking = paid()
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="pgpay-summary"' in page and 'id="pgpay-refund-form"' in page and 'id="pgpay-reconcile"' in page
    assert f"/admin/django_pgpay/webhookevent/?order_number={booking.order_number}" in page
    assert 'name="_save"' not in page
    assert response.context["adminform"].form.fields == {}  # nothing editable
    assert "Ledger" in page and "Confirm" in page
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{booking.pk}/delete/").status_code == 403
    # The old address of the order page leads here.
    old = admin_client.get(f"{CHANGELIST}{booking.pk}/detail/")
    assert old.status_code == 302 and old["Location"] == f"{CHANGELIST}{booking.pk}/change/"


def test_posting_the_change_form_never_writes_the_order_back(admin_client, paid):
    booking = paid()
    stale_page = admin_client.get(f"{CHANGELIST}{booking.pk}/change/")
    assert stale_page.status_code == 200
    payments.cancel(booking, payments.FULL, reason="meanwhile")  # e.g. a webhook moves the order on
    data = {
        "transactions-TOTAL_FORMS": "0",
        "transactions-INITIAL_FORMS": "0",
        "transactions-MIN_NUM_FORMS": "0",
        "transactions-MAX_NUM_FORMS": "1000",
    }
    assert admin_client.post(f"{CHANGELIST}{booking.pk}/change/", data).status_code == 405
    booking.refresh_from_db()
    assert booking.status == "CANCELED" and booking.canceled_amount == Decimal(20000)


def test_csv_action_streams_only_the_selected_orders(admin_client, paid):
    chosen = paid(buyer_name="홍길동")
    paid()
    response = admin_client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [chosen.pk]})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="booking-orders.csv"'
    rows = csv_rows(response)
    assert len(rows) == 2
    assert rows[1][0] == chosen.order_number and "홍길동" in rows[1]


@pytest.mark.parametrize("selected", ["abc", "1\x00", "", "-1.5", "1e3", "9" * 30])
def test_an_action_with_a_tampered_selection_is_a_400_not_a_500(admin_client, paid, selected):
    """``_selected_action=abc`` was a 500 in Django's own ``response_action`` (``pk__in`` raised ValueError);
    an integer beyond the column's range was one on SQLite (OverflowError)."""
    booking = paid()
    for url in (CHANGELIST, "/admin/django_pgpay/webhookevent/", "/admin/django_pgpay/exportjob/"):
        action = "export_csv" if url == CHANGELIST else "delete_selected"
        response = admin_client.post(url, {"action": action, "_selected_action": [str(booking.pk), selected]})
        assert response.status_code == 400, (url, response.status_code)
        assert "not items of this list" in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == "PAID"
    # "All items" selected: Django ignores the ids, and so does the guard.
    across = admin_client.post(CHANGELIST, {"action": "export_csv", "select_across": "1", "_selected_action": [selected]})
    assert across.status_code == 200 and len(csv_rows(across)) == 2


def test_csv_from_the_order_page(admin_client, paid):
    booking = paid()
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/csv/")
    assert [row[0] for row in csv_rows(response)[1:]] == [booking.order_number]


def order_page(client, order, **headers):
    response = client.get(f"/admin/{order._meta.app_label}/{order._meta.model_name}/{order.pk}/change/", **headers)
    assert response.status_code == 200
    return response


def test_order_page_shows_money_ledger_webhooks_and_refund_form(admin_client, paid, admin_user):
    booking = paid(buyer_name="최유리", buyer_phone="010-2222-3333")
    payments.cancel(booking, Decimal(3000), reason="빠진 반찬", source="staff", actor=admin_user)
    WebhookEvent.objects.create(
        gateway="fake",
        event_type="PAYMENT_STATUS_CHANGED",
        order_number=booking.order_number,
        verified=True,
        processed=True,
        status=DeliveryStatus.APPLIED,
    )
    WebhookEvent.objects.create(
        gateway="fake", event_type="PAYMENT_STATUS_CHANGED", order_number=booking.order_number, status=DeliveryStatus.FAILED
    )
    WebhookEvent.objects.create(gateway="fake", event_type="OTHER_ORDER", order_number="someone-else")
    response = order_page(admin_client, booking)
    page = response.content.decode()
    above_all_fields = page.split('id="pgpay-all-fields"')[0]
    assert "최유리" in page and "010-2222-3333" in page
    assert '<dd id="pgpay-balance">₩17,000</dd>' in page and '<dd id="pgpay-refunded">₩3,000</dd>' in page
    assert ".000" not in above_all_fields  # no raw decimals on the page itself
    assert page.index("Confirm") < page.index("빠진 반찬")  # the timeline, oldest first
    assert "(admin)" in page  # the staff user who refunded
    assert "PAYMENT_STATUS_CHANGED" in page and "OTHER_ORDER" not in page
    # Each delivery's state as the webhook list shows it: a badge, not a processed checkmark.
    assert 'class="pgpay-badge pgpay-badge-green pgpay-delivery-state" title="verified">Applied<' in page
    assert 'class="pgpay-badge pgpay-badge-red pgpay-delivery-state" title="not verified">Failed<' in page
    assert 'id="pgpay-refund-form"' in page and f"{CHANGELIST}{booking.pk}/csv/" in page
    assert "Fake PG" in page and "Card" in page  # the PG's name, the method's label
    assert "expires at" not in above_all_fields.lower()  # a paid order does not expire
    assert "expires_at" not in str(response.context["adminform"].fieldsets)
    # The one banner is the failed delivery's (a paid order in good standing has none: the next test).
    assert [banner.message for banner in response.context["banners"]] == [
        "1 webhook delivery of this order failed. Re-process it below once the cause is fixed."
    ]


def test_the_refund_form_starts_empty(admin_client, paid):
    booking = paid()
    response = order_page(admin_client, booking)
    assert response.context["banners"] == []  # a paid order in good standing: nothing to say first
    form = response.context["refund_form"]
    assert form["amount"].value() in (None, "") and form["token"].value()


def test_order_page_in_korean(admin_client, paid):
    booking = paid()
    payments.cancel(booking, Decimal(5000), reason="부분")
    page = order_page(admin_client, booking, HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "환불" in page and "원장" in page and "부분 취소" in page
    assert "15,000원" in page and "5,000원" in page and "카드" in page
    assert "Modified" not in page and "마지막 수정" in page


def test_an_open_order_shows_when_it_expires(admin_client, make_booking):
    booking = make_booking()
    page = order_page(admin_client, booking).content.decode()
    assert "expires at" in page and '<dd id="pgpay-paid">₩0</dd>' in page and '<dd id="pgpay-balance">₩0</dd>' in page


def test_banners_name_open_operations_and_failed_deliveries(admin_client, paid, pg):
    booking = paid()
    pg.fail_next("cancel", "timeout_after")
    payments.cancel(booking, Decimal(1000), reason="lost answer")
    WebhookEvent.objects.create(gateway="fake", event_type="X", order_number=booking.order_number, error="boom", status="failed")
    # A delivery that was refused (forged) or is still being received is not the shop's to re-process.
    WebhookEvent.objects.create(gateway="fake", event_type="Y", order_number=booking.order_number, error="bad signature", status="refused")
    banners = order_page(admin_client, booking).context["banners"]
    assert [b.level for b in banners] == ["warning", "error"]
    assert "waiting for the PG" in banners[0].message and "1 webhook delivery" in banners[1].message


def test_the_shops_own_fields_are_on_the_order_page(admin_client, pg):
    from tests.testapp.models import CartOrder

    order = CartOrder.objects.create(amount=Decimal(8000), shipping_address="서울특별시 중구 세종대로 110")
    page = order_page(admin_client, order).content.decode()
    assert "세종대로 110" in page and "pgpay-shop-fields" in page


def test_unknown_order_is_a_404(admin_client):
    assert admin_client.get(f"{CHANGELIST}999999/detail/").status_code == 404
    assert admin_client.post(f"{CHANGELIST}999999/refund/", {"amount": "1", "reason": "x", "token": "t"}).status_code == 404


def test_webhook_log_is_read_only_and_filtered_by_order_number(admin_client):
    WebhookEvent.objects.create(gateway="fake", event_type="A", order_number="ORDER-0001")
    WebhookEvent.objects.create(gateway="fake", event_type="B", order_number="ORDER-0002")
    response = admin_client.get("/admin/django_pgpay/webhookevent/", {"order_number": "ORDER-0001"})
    assert response.status_code == 200
    assert [e.event_type for e in response.context["cl"].result_list] == ["A"]
    assert admin_client.get("/admin/django_pgpay/webhookevent/add/").status_code == 403


# --- permissions ---------------------------------------------------------------------


def test_anonymous_and_non_staff_get_nothing(client, buyer, paid):
    booking = paid()
    for url in (CHANGELIST, f"{CHANGELIST}{booking.pk}/change/", f"{CHANGELIST}{booking.pk}/csv/", f"{CHANGELIST}{booking.pk}/invoice/"):
        for who in (None, buyer):
            client.logout()
            if who is not None:
                client.force_login(who)
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    client.force_login(buyer)
    response = client.post(f"{CHANGELIST}{booking.pk}/refund/", {"amount": "20000", "reason": "x", "token": "tok"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = client.post(
        CHANGELIST, {"action": "refund_in_full", "_selected_action": [booking.pk], "post": "yes", "reason": "x", "token": "t"}
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    booking.refresh_from_db()
    assert booking.status == "PAID"


def test_staff_without_permissions_is_refused(client, django_user_model, paid):
    booking = paid()
    client.force_login(staff_with(django_user_model, "nobody"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(f"{CHANGELIST}{booking.pk}/change/").status_code == 403
    assert client.post(f"{CHANGELIST}{booking.pk}/refund/", {"amount": "1", "reason": "x", "token": "t"}).status_code == 403


def test_view_only_staff_sees_and_exports_but_cannot_refund(client, django_user_model, paid):
    booking = paid()
    client.force_login(staff_with(django_user_model, "viewer", "view_booking"))
    response = client.get(CHANGELIST)
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "export_csv" in actions and "refund_in_full" not in actions
    page = client.get(f"{CHANGELIST}{booking.pk}/change/").content.decode()
    assert 'id="pgpay-refund-form"' not in page
    response = client.post(f"{CHANGELIST}{booking.pk}/refund/", {"amount": "1000", "reason": "x", "token": "t"})
    assert response.status_code == 403
    response = client.post(
        CHANGELIST, {"action": "refund_in_full", "_selected_action": [booking.pk], "post": "yes", "reason": "x", "token": "t"}
    )
    booking.refresh_from_db()
    assert booking.status == "PAID" and booking.canceled_amount == 0


def test_a_custom_refund_permission_replaces_the_change_permission(client, django_user_model, pg):
    from tests.testapp.models import CartOrder

    order = CartOrder.objects.create(amount=Decimal(8000))
    payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount), amount=order.amount)
    url = f"/admin/testapp/cartorder/{order.pk}/refund/"
    client.force_login(staff_with(django_user_model, "changer", "view_cartorder", "change_cartorder"))
    assert client.post(url, {"amount": "1000", "reason": "x", "token": "t1"}).status_code == 403
    client.force_login(staff_with(django_user_model, "refunder", "view_cartorder", "delete_cartorder"))
    assert client.post(url, {"amount": "1000", "reason": "x", "token": "t2"}).status_code == 200  # the confirmation step
    assert client.post(url, {"amount": "1000", "reason": "x", "token": "t2", "confirm": "yes"}).status_code == 302
    order.refresh_from_db()
    assert order.canceled_amount == Decimal(1000)


# --- PDF invoice hooks (django_pgpay.invoices is another module; stubbed here) ------


@pytest.fixture
def fake_invoices(monkeypatch):
    calls = []

    def invoice_response(orders, *, filename):
        calls.append(("one", [o.order_number for o in orders], filename))
        return HttpResponse(b"%PDF-fake", content_type="application/pdf")

    def invoice_pdf_action(modeladmin, request, queryset):
        calls.append(("pdf", sorted(o.order_number for o in queryset)))
        return HttpResponse(b"%PDF-merged", content_type="application/pdf")

    def invoice_zip_action(modeladmin, request, queryset):
        calls.append(("zip", sorted(o.order_number for o in queryset)))
        return HttpResponse(b"PK", content_type="application/zip")

    module = types.SimpleNamespace(
        invoice_response=invoice_response, invoice_pdf_action=invoice_pdf_action, invoice_zip_action=invoice_zip_action
    )
    monkeypatch.setattr(pgpay_admin.orders, "invoices_module", lambda: module)
    return calls


def test_invoice_actions_and_button_when_invoices_are_available(admin_client, paid, fake_invoices):
    booking = paid()
    response = admin_client.get(CHANGELIST)
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "invoice_pdf" in actions and "invoice_zip" in actions
    assert f"{CHANGELIST}{booking.pk}/invoice/" in admin_client.get(f"{CHANGELIST}{booking.pk}/change/").content.decode()
    assert f"{CHANGELIST}{booking.pk}/invoice/" in admin_client.get(f"{CHANGELIST}{booking.pk}/change/").content.decode()

    response = admin_client.get(f"{CHANGELIST}{booking.pk}/invoice/")
    assert response.content == b"%PDF-fake"
    assert fake_invoices[-1] == ("one", [booking.order_number], f"invoice-{booking.order_number}.pdf")
    response = admin_client.post(CHANGELIST, {"action": "invoice_pdf", "_selected_action": [booking.pk]})
    assert response.content == b"%PDF-merged" and fake_invoices[-1] == ("pdf", [booking.order_number])
    response = admin_client.post(CHANGELIST, {"action": "invoice_zip", "_selected_action": [booking.pk]})
    assert response.content == b"PK" and fake_invoices[-1] == ("zip", [booking.order_number])


def test_never_paid_orders_have_no_invoice_in_the_admin(admin_client, paid, make_booking, fake_invoices):
    booking, unpaid = paid(), make_booking(amount=Decimal(5000))
    assert "/invoice/" not in admin_client.get(f"{CHANGELIST}{unpaid.pk}/change/").content.decode()
    response = admin_client.get(f"{CHANGELIST}{unpaid.pk}/invoice/", follow=True)
    assert response.redirect_chain[-1][0].endswith(f"{unpaid.pk}/change/")
    assert "it has not been paid" in response.content.decode() and not fake_invoices
    # The action leaves the unpaid order out and says so; with only unpaid orders it renders nothing.
    response = admin_client.post(CHANGELIST, {"action": "invoice_pdf", "_selected_action": [booking.pk, unpaid.pk]})
    assert response.content == b"%PDF-merged" and fake_invoices[-1] == ("pdf", [booking.order_number])
    response = admin_client.post(CHANGELIST, {"action": "invoice_zip", "_selected_action": [unpaid.pk]}, follow=True)
    assert "1 order was never paid and has no invoice." in response.content.decode()
    assert fake_invoices[-1] == ("pdf", [booking.order_number])


def test_no_invoice_action_or_button_without_weasyprint(admin_client, paid, monkeypatch):
    monkeypatch.setattr(pgpay_admin.orders, "invoices_module", lambda: None)
    booking = paid()
    actions = [name for name, _ in admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices]
    assert "invoice_pdf" not in actions and "invoice_zip" not in actions
    assert "/invoice/" not in admin_client.get(f"{CHANGELIST}{booking.pk}/change/").content.decode()
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/invoice/")
    assert response.status_code == 404


def test_real_invoice_module_is_wired(admin_client, paid):
    module = pgpay_admin.invoices_module()
    if module is None:
        pytest.skip("django_pgpay.invoices (or WeasyPrint) is not here")
    booking = paid()
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/invoice/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"


def test_urls_are_named_for_the_model():
    assert reverse("admin:testapp_booking_detail", args=[7]) == f"{CHANGELIST}7/detail/"
    assert reverse("admin:testapp_cartorder_refund", args=[7]) == "/admin/testapp/cartorder/7/refund/"


def _compensation_the_pg_keeps_refusing(make_booking, pg, settings):
    """An order whose wrong-amount payment the PG refuses to give back, until the row needs attention."""
    from django_pgpay.exceptions import AmountMismatch

    settings.PGPAY = {**settings.PGPAY, "IN_FLIGHT_TIMEOUT": 0}  # reconcile sends the follow-up again at once

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, Decimal(100))  # the browser changed the amount
    pg.fail_next("cancel", "refuse", times=payments.MAX_FOLLOW_UP_ATTEMPTS)
    with pytest.raises(AmountMismatch):
        payments.confirm(booking, payment_id=payment_id)
    for _ in range(payments.MAX_FOLLOW_UP_ATTEMPTS):
        payments.reconcile(booking)
    booking.refresh_from_db()
    rows = list(booking.transactions.filter(kind="compensate").values_list("status", flat=True))
    assert rows.count("attention") == 1 and pg.payments[payment_id].state.value == "approved", rows  # money still held
    return booking


def test_the_attention_filter_finds_orders_a_person_must_look_at(admin_client, make_booking, paid, pg, seat, settings):
    seat.remain = 10
    seat.save()
    stuck = _compensation_the_pg_keeps_refusing(make_booking, pg, settings)
    waiting = paid()
    pg.fail_next("cancel", "timeout_after")
    payments.cancel(waiting, Decimal(1000), reason="lost answer")
    hooked = paid()
    WebhookEvent.objects.create(gateway="fake", event_type="X", order_number=hooked.order_number, error="boom", status="failed")
    quiet = paid()

    def found(value):
        return {o.pk for o in admin_client.get(CHANGELIST, {"attention": value}).context["cl"].result_list}

    assert found("needed") == {stuck.pk}
    assert found("waiting") == {waiting.pk}
    assert found("webhook") == {hooked.pk}
    assert quiet.pk in {o.pk for o in admin_client.get(CHANGELIST).context["cl"].result_list}
    assert "Needs attention" in admin_client.get(CHANGELIST).content.decode()  # the filter is shown
    assert admin_client.get(CHANGELIST, {"attention": "nonsense"}).status_code in (200, 302)  # Django's "?e=1", never a 500


def test_a_row_that_needs_attention_is_the_first_banner(admin_client, make_booking, pg, settings):
    stuck = _compensation_the_pg_keeps_refusing(make_booking, pg, settings)
    banners = order_page(admin_client, stuck).context["banners"]
    assert banners[0].level == "error"
    assert "Needs attention: the PG refused to give back a payment the shop did not keep (₩100) too often" in banners[0].message
    # After the shop settles it at the PG, "Reconcile now" records it and the banner goes.
    pg.cancel_at_pg(stuck.transactions.get(kind="compensate", status="attention").pg_payment_id)
    payments.reconcile(stuck, deep=True)
    assert not any("Needs attention" in b.message for b in order_page(admin_client, stuck).context["banners"])


def test_the_order_list_costs_the_same_queries_for_one_row_or_ten(admin_client, make_booking, seat, django_user_model):
    """The buyer column falls back to the user's name: joined, not read once per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def listed():
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(queries)

    seat.remain = 10
    seat.save()
    buyer = django_user_model.objects.create_user("buyer-0")
    make_booking(user=buyer, buyer_name="", buyer_email="")
    one = listed()
    for n in range(1, 10):
        make_booking(user=django_user_model.objects.create_user(f"buyer-{n}"), buyer_name="", buyer_email="")
    assert listed() == one


@pytest.mark.django_db
@pytest.mark.parametrize("object_id", ["abc", "%C3%A9", "1%00", "-1", "1.5", "10000000000000000000000000"])
def test_every_admin_url_naming_an_object_answers_an_id_that_names_none_without_a_500(object_id, django_user_model):
    """The export job pages answered a non-numeric id with a 500 (a raw filter on the primary key); every
    object URL of the admin, Django's and ours, must answer 404 or a redirect, whatever the method."""
    from tests.fuzz.test_http_fuzz import ADMIN_OBJECT_URLS

    superuser = django_user_model.objects.create_superuser("root", password="pw")
    client = Client(raise_request_exception=False)
    client.force_login(superuser)
    for url in ADMIN_OBJECT_URLS:
        path = url.format(id=object_id)
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code < 500, (method.__name__, path, response.status_code)


def test_a_reversed_date_range_is_refused_not_an_empty_list(admin_client, paid):
    """``?created__range__gte=2030-01-01&created__range__lte=2020-01-01`` listed no order, silently."""
    import datetime

    from tests.testapp.models import Booking

    booking = paid()
    Booking.objects.filter(pk=booking.pk).update(created=datetime.datetime(2026, 1, 10, 3, tzinfo=datetime.timezone.utc))
    for field in ("created", "paid_at"):
        response = admin_client.get(CHANGELIST, {f"{field}__range__gte": "2030-01-01", f"{field}__range__lte": "2020-01-01"})
        assert response.status_code == 302 and response["Location"].endswith("?e=1"), field
    response = admin_client.get(CHANGELIST, {"created__range__gte": "2026-01-11", "created__range__lte": "2026-01-10"})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    # The webhook log's filter is the same class.
    response = admin_client.get(
        "/admin/django_pgpay/webhookevent/", {"received_at__range__gte": "2030-01-01", "received_at__range__lte": "2020-01-01"}
    )
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    assert admin_client.get("/admin/django_pgpay/webhookevent/", {"received_at__range__gte": "2020-01-01"}).status_code == 200
    assert found(admin_client, created__range__gte="2026-01-10", created__range__lte="2026-01-10") == {booking.pk}  # one day is a range


@pytest.mark.parametrize(
    "query",
    [
        {"created__year": "99999999999"},  # Django: OverflowError, a 500
        {"created__year": "2026", "created__month": "99999999999"},
        {"created__year": "2026", "created__month": "13"},
        {"created__year": "2026", "created__month": "1", "created__day": "0"},
        {"created__year": "２０２６"},  # full-width digits
        {"created__year": "-1"},
        {"created__year": "1"},  # its first day in Seoul is before year 1 in UTC (review of the guard: still a 500)
        {"created__year": "0001", "created__month": "1", "created__day": "1"},
    ],
)
def test_query_guard_refuses_a_date_hierarchy_outside_the_calendar(admin_user, rf, query):
    """Attack review: the example's Seat admin (``date_hierarchy``) answered ``?datetime__year=99999999999`` with a 500."""
    from django.contrib import admin

    from tests.testapp.models import Booking

    class DatedAdmin(pgpay_admin.QueryGuard, admin.ModelAdmin):
        date_hierarchy = "created"

    request = rf.get(CHANGELIST, query)
    request.user = admin_user
    response = DatedAdmin(Booking, admin.site).changelist_view(request)
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    for edge in (
        {"created__year": "2026", "created__month": "12", "created__day": "31"},
        {"created__year": "9998", "created__month": "12"},
    ):
        request = rf.get(CHANGELIST, edge)
        request.user = admin_user
        assert DatedAdmin(Booking, admin.site).changelist_view(request).status_code == 200
