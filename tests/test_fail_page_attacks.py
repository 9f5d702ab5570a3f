"""The failure page against a crafted fail URL: what the buyer can be made to read, and who gets "Try again" (a review)."""

from __future__ import annotations

import datetime
import html
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import path
from django.utils import timezone

from django_pgpay.views import FAIL_KIND_MESSAGES, ReturnView, fail_kind
from tests.toss_support import toss, toss_api, toss_booking  # noqa: F401
from tests.urls import urlpatterns as base_urlpatterns

pytestmark = pytest.mark.django_db


class RetryReturnView(ReturnView):
    def get_retry_url(self, order):
        return f"/book/{order.seat_id}/"


urlpatterns = [path("retry/<slug:alias>/fail/", RetryReturnView.as_view(failed=True)), *base_urlpatterns]


def test_error_code_cannot_carry_a_sentence_for_the_buyer(client, buyer, toss_booking, toss_api):
    """The PG's message is 'never shown', but the code is shown whenever it is str.isalnum() after '_' removal.

    str.isalnum() is true for Hangul, so a link a phisher sends (`failUrl?code=...`) puts any Korean sentence
    under 'Payment not completed' as the 'Error code', 100 characters of it.
    """
    booking = toss_booking()
    client.force_login(buyer)
    phish = "결제오류_고객센터_07012345678로_전화하시면_즉시_환불됩니다"
    page = client.get("/pay/toss/fail/?" + urlencode({"code": phish, "orderId": booking.order_number})).content.decode()
    # Expected: a code that is not the PG's code shape ([A-Z0-9_], ASCII) is not shown.
    assert phish not in html.unescape(page)


@pytest.mark.parametrize(
    "code, message, expected",
    [
        # A card past its validity date is a decline, not "the time to finish the payment ran out".
        ("FAILURE_TYPE_PG", "[PG사 에러] 유효기간이 만료된 카드입니다.", "declined"),
        ("FAILURE_TYPE_PG", "Your card has expired.", "declined"),
        # A refusal whose PG words mention 취소 (거래취소, 승인취소) reads "You closed the window", and its code is hidden.
        ("FAILURE_TYPE_PG", "[PG사 에러] 카드사 승인 거절로 거래가 취소되었습니다.", "declined"),
        ("PAYMENT_FAILED", "[결제실패] 한도초과로 승인취소", "declined"),  # PortOne V1, imp_success=false
    ],
)
def test_message_hints_do_not_mislabel_a_refusal(code, message, expected):
    assert fail_kind(code, message) == expected


@pytest.mark.urls(__name__)
def test_staff_who_may_view_orders_get_no_try_again_on_a_buyers_order(django_user_model, buyer, toss_booking, toss_api):
    """The link is gated by may_view (staff with view_booking), not by being the buyer (may_pay).

    A staff member who opens a buyer's fail URL (support, a shared link) is offered to pay the buyer's order;
    in the example shop it points at the buyer's order page (404 for staff) or the seat's booking page
    (a new booking in staff's own name).
    """
    booking = toss_booking(expires_at=timezone.now() + datetime.timedelta(minutes=30))
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename="view_booking"))
    c = Client()
    c.force_login(clerk)
    page = c.get("/retry/toss/fail/?" + urlencode({"code": "REJECT_CARD_COMPANY", "orderId": booking.order_number})).content.decode()
    assert str(FAIL_KIND_MESSAGES["declined"]) in page
    assert "pgpay-retry" not in page
