"""The admin's small text: "All fields" in the page's terms, a deposit account in the summary, webhook rows and pages."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from django_pgpay import labels
from django_pgpay.models import WebhookEvent
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T

pytestmark = pytest.mark.django_db


def order_page(client, order, **headers) -> str:
    response = client.get(f"/admin/{order._meta.app_label}/{order._meta.model_name}/{order.pk}/change/", **headers)
    assert response.status_code == 200
    return response.content.decode()


def test_all_fields_shows_money_in_its_currency_and_names_not_codes(admin_client, pay_booking):
    booking = pay_booking(amount=Decimal(30000))
    all_fields = order_page(admin_client, booking).split('id="pgpay-all-fields"')[1]
    assert "₩30,000" in all_fields and "₩0" in all_fields
    assert "30000.000" not in all_fields and "0.000" not in all_fields
    assert "Fake PG" in all_fields and "Card" in all_fields
    assert ">fake<" not in all_fields


def test_a_waiting_order_shows_its_deposit_account_in_the_summary(admin_client, make_booking):
    booking = make_booking(amount=Decimal(30000))
    vbank = {"vbank_account_number": "T4571337034324", "vbank_bank_code": "004", "vbank_holder": "(주)샌드박스상점"}
    type(booking).objects.filter(pk=booking.pk).update(status=S.WAITING_FOR_DEPOSIT, pg_data=vbank)
    page = order_page(admin_client, booking, HTTP_ACCEPT_LANGUAGE="ko")
    summary = page.split('id="pgpay-all-fields"')[0]
    assert "T4571337034324" in summary and "KB국민은행" in summary and "(주)샌드박스상점" in summary
    assert 'id="pgpay-deposit-due"' in summary


def test_a_paid_order_has_no_deposit_rows(admin_client, pay_booking):
    assert "pgpay-deposit-account" not in order_page(admin_client, pay_booking())


@pytest.mark.parametrize(
    "reason, english, korean",
    [
        ("status PAID", "status changed to Paid", "상태 → 결제 완료"),
        (
            "virtual account issued; status WAITING_FOR_DEPOSIT",
            "virtual account issued; status changed to",
            "가상계좌 발급; 상태 → 입금 대기",
        ),
        ("cancel 5000.000 confirmed", "cancel of ₩5,000 confirmed", "5,000원 취소 확인"),
        ("something new", "something new", "something new"),
    ],
)
def test_webhook_changes_read_as_words(reason, english, korean):
    with translation.override("en"):
        assert english in labels.changes(reason)
    with translation.override("ko"):
        assert korean in labels.changes(reason)


def webhook_row(booking, reason: str, key: str = "wh-1"):
    """A ledger row of a webhook that changed ``booking``, its ``reason`` as the bookkeeping writes it."""
    return booking.get_transaction_model().objects.create(
        order=booking, kind=K.WEBHOOK, status=T.SUCCEEDED, amount=booking.amount, currency="KRW", idempotency_key=key, reason=reason
    )


def test_a_webhook_row_on_the_order_page_says_what_changed_in_words(admin_client, pay_booking):
    booking = pay_booking()
    webhook_row(booking, "status PAID")
    page = order_page(admin_client, booking, HTTP_ACCEPT_LANGUAGE="ko")
    assert "변경: 상태 → 결제 완료" in page and "status PAID" not in page


def test_the_webhook_page_names_the_pg_and_links_the_order(admin_client, client, django_user_model, pay_booking):
    booking = pay_booking()
    event = WebhookEvent.objects.create(gateway="fake", event_type="PAID", order_number=booking.order_number)
    url = f"/admin/django_pgpay/webhookevent/{event.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "Fake PG" in page
    assert f'<a href="/admin/testapp/booking/{booking.pk}/change/" id="pgpay-webhook-order">{booking.order_number}</a>' in page
    # Staff who may read the webhook log but not the orders see the number alone.
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename="view_webhookevent"))
    client.force_login(clerk)
    page = client.get(url).content.decode()
    assert booking.order_number in page and "pgpay-webhook-order" not in page


def test_the_stripe_sandbox_names_an_unnamed_shop_in_the_pages_language():
    """Its hosted page's "Back to …" link read "Sandbox shop 페이지로 돌아가기" in Korean."""
    import types

    from django_pgpay.sandbox.stripe.intents import Intents

    unnamed, named = types.SimpleNamespace(config=lambda: {}), types.SimpleNamespace(config=lambda: {"BUSINESS_NAME": "한상 마켓"})
    with translation.override("ko"):
        assert Intents.business_name(unnamed) == "샌드박스 상점" and Intents.business_name(named) == "한상 마켓"
    with translation.override("en"):
        assert Intents.business_name(unnamed) == "Sandbox shop"
