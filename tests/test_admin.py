"""The order admin: list, search, filters, CSV action, order page, webhook log, permissions, invoice hooks."""

from __future__ import annotations

import csv
import io
import types
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.http import HttpResponse
from django.urls import reverse

from django_pgpay import admin as pgpay_admin
from django_pgpay import payments
from django_pgpay.models import WebhookEvent

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


def test_changelist_columns_search_and_filters(admin_client, paid, make_booking):
    kim = paid(buyer_name="김민수", buyer_email="kim@example.com")
    ready = make_booking(buyer_name="Lee")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    for label in ("Order number", "Order name", "Amount", "Cancelled amount", "Status", "Gateway", "Buyer", "Paid at"):
        assert label in page
    assert kim.order_number in page and ready.order_number in page
    assert "20,000" in page and "Awaiting payment" in page

    def found(**query):
        result = admin_client.get(CHANGELIST, query).context["cl"].result_list
        return {order.pk for order in result}

    assert found(q=kim.order_number) == {kim.pk}
    assert found(q=kim.pg_payment_id) == {kim.pk}
    assert found(q="김민수") == {kim.pk}
    assert found(q="kim@example") == {kim.pk}
    assert found(status__exact="PAID") == {kim.pk}
    assert found(status__exact="READY") == {ready.pk}
    assert found(gateway="fake") == {kim.pk, ready.pk}
    assert found(**{"paid_at__isnull": "True"}) == {ready.pk}


def test_change_page_is_read_only_and_links_to_the_order_page_and_webhooks(admin_client, paid):
    booking = paid()
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{CHANGELIST}{booking.pk}/detail/" in page
    assert f"/admin/django_pgpay/webhookevent/?order_number={booking.order_number}" in page
    assert 'name="_save"' not in page
    assert response.context["adminform"].form.fields == {}  # nothing editable
    assert "Ledger" in page and "Confirm" in page  # the ledger inline
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{booking.pk}/delete/").status_code == 403


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


def test_csv_from_the_order_page(admin_client, paid):
    booking = paid()
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/csv/")
    assert [row[0] for row in csv_rows(response)[1:]] == [booking.order_number]


def test_order_page_shows_ledger_webhooks_and_refund_form(admin_client, paid, admin_user):
    booking = paid(buyer_name="최유리")
    payments.cancel(booking, Decimal(3000), reason="빠진 반찬", source="staff", actor=admin_user)
    WebhookEvent.objects.create(gateway="fake", event_type="PAYMENT_STATUS_CHANGED", order_number=booking.order_number, verified=True, processed=True)
    WebhookEvent.objects.create(gateway="fake", event_type="OTHER_ORDER", order_number="someone-else")
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/detail/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "최유리" in page
    assert "17,000 KRW" in page  # the balance
    assert page.index("Confirm") < page.index("빠진 반찬")  # the timeline, oldest first
    assert "admin" in page  # the staff user who refunded
    assert "PAYMENT_STATUS_CHANGED" in page and "OTHER_ORDER" not in page
    assert 'id="pgpay-refund-form"' in page
    assert f"{CHANGELIST}{booking.pk}/csv/" in page


def test_order_page_in_korean(admin_client, paid):
    booking = paid()
    response = admin_client.get(f"{CHANGELIST}{booking.pk}/detail/", HTTP_ACCEPT_LANGUAGE="ko")
    page = response.content.decode()
    assert "환불" in page and "원장" in page and "결제 완료" in page


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
    for url in (CHANGELIST, f"{CHANGELIST}{booking.pk}/detail/", f"{CHANGELIST}{booking.pk}/csv/", f"{CHANGELIST}{booking.pk}/invoice/"):
        for who in (None, buyer):
            client.logout()
            if who is not None:
                client.force_login(who)
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    client.force_login(buyer)
    response = client.post(f"{CHANGELIST}{booking.pk}/refund/", {"amount": "20000", "reason": "x", "token": "tok"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = client.post(CHANGELIST, {"action": "refund_in_full", "_selected_action": [booking.pk], "post": "yes", "reason": "x", "token": "t"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    booking.refresh_from_db()
    assert booking.status == "PAID"


def test_staff_without_permissions_is_refused(client, django_user_model, paid):
    booking = paid()
    client.force_login(staff_with(django_user_model, "nobody"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(f"{CHANGELIST}{booking.pk}/detail/").status_code == 403
    assert client.post(f"{CHANGELIST}{booking.pk}/refund/", {"amount": "1", "reason": "x", "token": "t"}).status_code == 403


def test_view_only_staff_sees_and_exports_but_cannot_refund(client, django_user_model, paid):
    booking = paid()
    client.force_login(staff_with(django_user_model, "viewer", "view_booking"))
    response = client.get(CHANGELIST)
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "export_csv" in actions and "refund_in_full" not in actions
    page = client.get(f"{CHANGELIST}{booking.pk}/detail/").content.decode()
    assert 'id="pgpay-refund-form"' not in page
    response = client.post(f"{CHANGELIST}{booking.pk}/refund/", {"amount": "1000", "reason": "x", "token": "t"})
    assert response.status_code == 403
    response = client.post(CHANGELIST, {"action": "refund_in_full", "_selected_action": [booking.pk], "post": "yes", "reason": "x", "token": "t"})
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
    assert client.post(url, {"amount": "1000", "reason": "x", "token": "t2"}).status_code == 302
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
    monkeypatch.setattr(pgpay_admin, "invoices_module", lambda: module)
    return calls


def test_invoice_actions_and_button_when_invoices_are_available(admin_client, paid, fake_invoices):
    booking = paid()
    response = admin_client.get(CHANGELIST)
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "invoice_pdf" in actions and "invoice_zip" in actions
    assert f"{CHANGELIST}{booking.pk}/invoice/" in admin_client.get(f"{CHANGELIST}{booking.pk}/detail/").content.decode()
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
    assert "/invoice/" not in admin_client.get(f"{CHANGELIST}{unpaid.pk}/detail/").content.decode()
    response = admin_client.get(f"{CHANGELIST}{unpaid.pk}/invoice/", follow=True)
    assert response.redirect_chain[-1][0].endswith(f"{unpaid.pk}/detail/")
    assert "it has not been paid" in response.content.decode() and not fake_invoices
    # The action leaves the unpaid order out and says so; with only unpaid orders it renders nothing.
    response = admin_client.post(CHANGELIST, {"action": "invoice_pdf", "_selected_action": [booking.pk, unpaid.pk]})
    assert response.content == b"%PDF-merged" and fake_invoices[-1] == ("pdf", [booking.order_number])
    response = admin_client.post(CHANGELIST, {"action": "invoice_zip", "_selected_action": [unpaid.pk]}, follow=True)
    assert "1 order was never paid and has no invoice." in response.content.decode()
    assert fake_invoices[-1] == ("pdf", [booking.order_number])


def test_no_invoice_action_or_button_without_weasyprint(admin_client, paid, monkeypatch):
    monkeypatch.setattr(pgpay_admin, "invoices_module", lambda: None)
    booking = paid()
    actions = [name for name, _ in admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices]
    assert "invoice_pdf" not in actions and "invoice_zip" not in actions
    assert "/invoice/" not in admin_client.get(f"{CHANGELIST}{booking.pk}/detail/").content.decode()
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
