"""The admin's operations besides refunds: "reconcile now" on an order, re-processing webhook deliveries.

Each is a POST behind a permission: staff without it get a 403 (or no button, no action)
and nothing changes.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages

from django_pgpay import payments, webhooks
from django_pgpay.conf import get_gateway
from django_pgpay.models import WebhookEvent
from tests.testapp.models import BookingTransaction

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/testapp/booking/"
WEBHOOKS = "/admin/django_pgpay/webhookevent/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def staff_with(django_user_model, username, *codenames):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


# --- reconcile now ----------------------------------------------------------------------------


def test_reconcile_now_applies_a_cancel_made_at_the_pg(admin_client, pay_booking, pg):
    order = pay_booking()
    pg.cancel_at_pg(order.pg_payment_id, Decimal(5000))  # in the PG's dashboard; no webhook came
    response = admin_client.post(f"{CHANGELIST}{order.pk}/reconcile/")
    assert response.status_code == 302 and response["Location"].endswith(f"/{order.pk}/change/")
    (message,) = texts(response)
    assert f"Order {order.order_number} reconciled with Fake PG (for tests): now Partially cancelled, balance ₩15,000." in message
    order.refresh_from_db()
    assert order.status == "PARTIAL_CANCELED" and order.canceled_amount == Decimal(5000)
    (sync,) = BookingTransaction.objects.filter(order=order, kind="sync")
    assert sync.amount == Decimal(5000) and sync.status == "succeeded"


def test_reconcile_now_with_nothing_to_change_says_so(admin_client, pay_booking, pg):
    order = pay_booking()
    response = admin_client.post(f"{CHANGELIST}{order.pk}/reconcile/", HTTP_ACCEPT_LANGUAGE="ko")
    (message,) = texts(response)
    assert "기록과 일치합니다" in message and "20,000원" in message
    assert pg.count("lookup") == 1  # it did ask the PG


def test_reconcile_now_when_the_pg_cannot_be_reached(admin_client, pay_booking, pg):
    order = pay_booking()
    pg.fail_next("lookup", "timeout_before")
    response = admin_client.post(f"{CHANGELIST}{order.pk}/reconcile/")
    assert response.status_code == 302
    (message,) = texts(response)
    assert message.startswith(f"Could not reconcile order {order.order_number} with Fake PG")
    order.refresh_from_db()
    assert order.status == "PAID"


def test_reconcile_now_settles_an_unanswered_refund(admin_client, pay_booking, pg):
    order = pay_booking()
    pg.fail_next("cancel", "timeout_after")
    payments.cancel(order, Decimal(3000), reason="lost")
    banners = admin_client.get(f"{CHANGELIST}{order.pk}/change/").context["banners"]
    assert banners and "waiting for the PG" in banners[0].message
    admin_client.post(f"{CHANGELIST}{order.pk}/reconcile/")
    order.refresh_from_db()
    assert order.canceled_amount == Decimal(3000)
    assert admin_client.get(f"{CHANGELIST}{order.pk}/change/").context["banners"] == []


def test_get_on_reconcile_changes_nothing(admin_client, pay_booking, pg):
    order = pay_booking()
    response = admin_client.get(f"{CHANGELIST}{order.pk}/reconcile/")
    assert response.status_code == 302 and pg.count("lookup") == 0


def test_reconcile_now_needs_the_change_permission(client, django_user_model, pay_booking, pg):
    order = pay_booking()
    pg.cancel_at_pg(order.pg_payment_id, Decimal(5000))
    client.force_login(staff_with(django_user_model, "viewer", "view_booking"))
    page = client.get(f"{CHANGELIST}{order.pk}/change/").content.decode()
    assert 'id="pgpay-reconcile"' not in page
    assert client.post(f"{CHANGELIST}{order.pk}/reconcile/").status_code == 403
    order.refresh_from_db()
    assert order.status == "PAID" and pg.count("lookup") == 0
    client.force_login(staff_with(django_user_model, "operator", "view_booking", "change_booking"))
    assert 'id="pgpay-reconcile"' in client.get(f"{CHANGELIST}{order.pk}/change/").content.decode()
    assert client.post(f"{CHANGELIST}{order.pk}/reconcile/").status_code == 302
    order.refresh_from_db()
    assert order.status == "PARTIAL_CANCELED"


def test_a_custom_reconcile_permission_replaces_the_change_permission(client, django_user_model, pay_booking, pg, monkeypatch):
    from django.contrib import admin

    from tests.testapp.models import Booking

    monkeypatch.setattr(admin.site.get_model_admin(Booking), "reconcile_permission", "testapp.delete_booking")
    order = pay_booking()
    client.force_login(staff_with(django_user_model, "changer", "view_booking", "change_booking"))
    assert client.post(f"{CHANGELIST}{order.pk}/reconcile/").status_code == 403
    assert pg.count("lookup") == 0
    client.force_login(staff_with(django_user_model, "reconciler", "view_booking", "delete_booking"))
    assert client.post(f"{CHANGELIST}{order.pk}/reconcile/").status_code == 302
    assert pg.count("lookup") == 1


# --- re-processing webhook deliveries -----------------------------------------------------------


@pytest.fixture
def failed_delivery(pay_booking, pg):
    """A paid order, cancelled in part at the PG; its webhook came while the PG's lookups failed (503)."""
    order = pay_booking()
    pg.cancel_at_pg(order.pg_payment_id, Decimal(5000))
    pg.fail_next("lookup", "timeout_before")
    body = json.dumps({"payment_id": order.pg_payment_id, "order_number": order.order_number, "event_id": "evt-1", "type": "CANCELED"})
    receipt = webhooks.receive(get_gateway("fake"), headers={"Content-Type": "application/json"}, body=body.encode())
    assert receipt.status == 503 and not receipt.event.processed and receipt.event.error
    return order, receipt.event


def test_reprocess_action_applies_a_failed_delivery_and_logs_who(admin_client, admin_user, failed_delivery):
    order, event = failed_delivery
    response = admin_client.post(WEBHOOKS, {"action": "reprocess", "_selected_action": [event.pk]})
    assert response.status_code == 302
    assert "1 delivery re-processed and applied." in texts(response)
    event.refresh_from_db()
    order.refresh_from_db()
    assert event.processed and event.error == "" and event.verified
    assert order.status == "PARTIAL_CANCELED" and order.canceled_amount == Decimal(5000)
    (entry,) = LogEntry.objects.filter(object_id=str(event.pk))
    assert entry.user == admin_user and entry.get_change_message().startswith("Re-processed: HTTP 200")
    # A second time: already processed, left alone, nothing applied twice.
    response = admin_client.post(WEBHOOKS, {"action": "reprocess", "_selected_action": [event.pk]})
    assert "1 delivery was already processed and was left alone." in texts(response)
    assert BookingTransaction.objects.filter(order=order, kind="sync").count() == 1
    assert LogEntry.objects.filter(object_id=str(event.pk)).count() == 1


def test_reprocess_that_fails_again_keeps_the_new_error(admin_client, failed_delivery, pg):
    order, event = failed_delivery
    pg.fail_next("lookup", "timeout_before")
    response = admin_client.post(f"{WEBHOOKS}{event.pk}/reprocess/")
    assert response.status_code == 302 and response["Location"] == f"{WEBHOOKS}{event.pk}/change/"
    (message,) = texts(response)
    assert message.startswith(f"Delivery #{event.pk} failed again:")
    event.refresh_from_db()
    assert not event.processed and "unavailable" in event.error
    assert LogEntry.objects.get(object_id=str(event.pk)).get_change_message().startswith("Re-processed: HTTP 503")
    order.refresh_from_db()
    assert order.status == "PAID"


def test_reprocess_that_meets_a_bug_in_the_gateway_code_is_a_message_not_a_500(admin_client, failed_delivery, monkeypatch):
    """A gateway bug (verify_webhook raising TypeError) when staff re-process: the error, counted as an attempt."""
    order, event = failed_delivery
    attempts = event.attempts

    def broken(self, parsed, order):
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr(type(get_gateway("fake")), "verify_webhook", broken)
    response = admin_client.post(f"{WEBHOOKS}{event.pk}/reprocess/")
    assert response.status_code == 302
    (message,) = texts(response)
    assert message == f"Delivery #{event.pk} failed again: TypeError: 'NoneType' object is not subscriptable"
    event.refresh_from_db()
    assert (event.status, event.attempts, event.processed) == ("failed", attempts + 1, False)
    order.refresh_from_db()
    assert order.status == "PAID"


def test_reprocess_button_on_the_order_page_comes_back_to_it(admin_client, failed_delivery):
    order, event = failed_delivery
    page = admin_client.get(f"{CHANGELIST}{order.pk}/change/")
    assert f"{WEBHOOKS}{event.pk}/reprocess/" in page.content.decode()
    assert [b.level for b in page.context["banners"]] == ["error"]
    back = f"{CHANGELIST}{order.pk}/change/"
    response = admin_client.post(f"{WEBHOOKS}{event.pk}/reprocess/", {"next": back})
    assert response["Location"] == back
    event.refresh_from_db()
    assert event.processed
    # Off-site "next" is not followed.
    other = WebhookEvent.objects.create(gateway="fake", body="{}", error="x")
    response = admin_client.post(f"{WEBHOOKS}{other.pk}/reprocess/", {"next": "https://evil.example/"})
    assert response["Location"] == f"{WEBHOOKS}{other.pk}/change/"


def test_the_delivery_page_has_a_reprocess_button_until_processed(admin_client, failed_delivery):
    _order, event = failed_delivery
    page = admin_client.get(f"{WEBHOOKS}{event.pk}/change/").content.decode()
    assert 'id="pgpay-reprocess"' in page
    admin_client.post(f"{WEBHOOKS}{event.pk}/reprocess/")
    assert 'id="pgpay-reprocess"' not in admin_client.get(f"{WEBHOOKS}{event.pk}/change/").content.decode()


def test_reprocess_of_a_refused_delivery_applies_it_once_it_verifies(admin_client, failed_delivery):
    """A delivery refused under settings that were wrong then: a person may have it tried again, and its result
    is written (a refusal is final for every automatic retry, not for the admin's Re-process)."""
    order, event = failed_delivery
    WebhookEvent.objects.filter(pk=event.pk).update(status="refused", error="not verified: a key was missing")
    response = admin_client.post(f"{WEBHOOKS}{event.pk}/reprocess/")
    assert "re-processed and applied" in texts(response)[0]
    event.refresh_from_db()
    assert (event.status, event.processed) == ("applied", True)
    order.refresh_from_db()
    assert order.canceled_amount == Decimal(5000)


def test_reprocess_of_a_delivery_for_an_unconfigured_gateway_is_a_message(admin_client):
    event = WebhookEvent.objects.create(gateway="gone", body="{}", error="old")
    response = admin_client.post(f"{WEBHOOKS}{event.pk}/reprocess/")
    assert response.status_code == 302
    assert "failed again" in texts(response)[0]
    event.refresh_from_db()
    assert not event.processed and "gone" in event.error and event.status == "failed"


def test_reprocess_needs_the_permission(client, django_user_model, failed_delivery):
    order, event = failed_delivery
    client.force_login(staff_with(django_user_model, "viewer", "view_webhookevent", "view_booking", "change_booking"))
    response = client.get(WEBHOOKS)
    assert response.status_code == 200
    form = response.context["action_form"]
    assert form is None or "reprocess" not in [name for name, _ in form.fields["action"].choices]
    assert 'id="pgpay-reprocess"' not in client.get(f"{WEBHOOKS}{event.pk}/change/").content.decode()
    assert f"{WEBHOOKS}{event.pk}/reprocess/" not in client.get(f"{CHANGELIST}{order.pk}/change/").content.decode()
    assert client.post(f"{WEBHOOKS}{event.pk}/reprocess/").status_code == 403
    client.post(WEBHOOKS, {"action": "reprocess", "_selected_action": [event.pk]})
    event.refresh_from_db()
    order.refresh_from_db()
    assert not event.processed and order.status == "PAID" and not LogEntry.objects.exists()
    client.force_login(staff_with(django_user_model, "operator", "view_webhookevent", "change_webhookevent"))
    assert client.post(f"{WEBHOOKS}{event.pk}/reprocess/").status_code == 302
    event.refresh_from_db()
    assert event.processed


def test_webhook_list_columns(admin_client, failed_delivery):
    _order, event = failed_delivery
    response = admin_client.get(WEBHOOKS)
    page = response.content.decode()
    assert "Fake PG" in page and "CANCELED" in page and 'class="pgpay-ellipsis pgpay-error"' in page
    assert list(response.context["cl"].list_display)[1:] == [
        "display_received", "display_event", "display_order_number", "display_state"
    ]  # fmt: skip
    assert '<span class="pgpay-badge pgpay-badge-red" title="not verified">Failed</span>' in page
    assert {e.pk for e in admin_client.get(WEBHOOKS, {"status__exact": "failed"}).context["cl"].result_list} == {event.pk}
    assert admin_client.get(WEBHOOKS, {"status__exact": "applied"}).context["cl"].result_list.count() == 0
