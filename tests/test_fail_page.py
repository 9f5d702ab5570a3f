"""The buyer's failure page: one sentence per kind of failure, the PG's code small and named, a way to try again."""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import path
from django.utils import timezone

from django_pgpay.status import OrderStatus as S
from django_pgpay.views import FAIL_KIND_MESSAGES, ReturnView, fail_kind
from tests.urls import urlpatterns as base_urlpatterns


class RetryReturnView(ReturnView):
    """A shop's fail view that knows where its orders are paid again."""

    def get_retry_url(self, order):
        return f"/book/{order.seat_id}/"


urlpatterns = [path("retry/<slug:alias>/fail/", RetryReturnView.as_view(failed=True)), *base_urlpatterns]


@pytest.mark.parametrize(
    "code, message, kind",
    [
        ("PAY_PROCESS_CANCELED", "사용자에 의해 결제가 취소되었습니다.", "closed"),  # Toss, Bootpay event=cancel, Stripe cancel_url
        ("PAY_PROCESS_ABORTED", "", "aborted"),  # Toss; Bootpay event=error
        ("REJECT_CARD_COMPANY", "카드사에서 결제를 거절했습니다.", "declined"),  # Toss
        ("NOT_FOUND_PAYMENT_SESSION", "", "expired"),  # Toss: the window's session ran out
        ("F400", "사용자가 결제를 취소하셨습니다", "closed"),  # PortOne V1
        ("F1002", "[결제실패] 카드사 승인 거절 (한도초과)", "declined"),
        ("F0005", "[결제검증] 사전등록된 결제정보와 요청된 결제금액이 일치하지 않습니다.", "amount"),
        ("PAYMENT_FAILED", "사용자가 결제를 취소하셨습니다", "closed"),  # V1 imp_success=false without a code
        ("FAILURE_TYPE_PG", "[PG사 에러] 사용자가 결제를 취소하였습니다.", "closed"),  # PortOne V2: one code, two kinds
        ("FAILURE_TYPE_PG", "[PG사 에러] 카드사 승인 거절 (한도초과)", "declined"),
        ("FAILURE_TYPE_PG", "[PG사 에러] 결제 금액이 한도를 초과했습니다", "declined"),  # 금액 alone is no mismatch
        ("FAILURE_TYPE_PROCESS", "사전 등록된 결제 정보와 결제 금액이 일치하지 않습니다.", "amount"),
        ("INVALID_REQUEST", "가상계좌 입금 기한(accountExpiry)이 이미 지났습니다.", "expired"),
        ("SOMETHING_ELSE", "", ""),
    ],
)
def test_each_pgs_failure_codes_have_a_kind(code, message, kind):
    assert fail_kind(code, message) == kind


def test_a_definite_code_is_not_overridden_by_the_message():
    assert fail_kind("REJECT_CARD_COMPANY", "사용자가 결제를 취소하였습니다") == "declined"


def fail_query(booking, code, message=""):
    return urlencode({"code": code, "message": message, "orderId": booking.order_number})


def test_portone_v2_closed_and_declined_read_differently(buyer, portone_v2_booking, portone_v2_api):
    booking = portone_v2_booking()
    client = Client()
    client.force_login(buyer)
    closed = client.get(
        "/pay/portone-v2/fail/?"
        + urlencode(
            {"paymentId": booking.order_number, "code": "FAILURE_TYPE_PG", "message": "[PG사 에러] 사용자가 결제를 취소하였습니다."}
        )
    )
    declined = client.get(
        "/pay/portone-v2/fail/?"
        + urlencode({"paymentId": booking.order_number, "code": "FAILURE_TYPE_PG", "message": "[PG사 에러] 카드사 승인 거절"})
    )
    assert str(FAIL_KIND_MESSAGES["closed"]) in closed.content.decode()
    assert str(FAIL_KIND_MESSAGES["declined"]) in declined.content.decode()
    # The PG's words are read, never shown; the code is shown, named, only where something went wrong.
    assert "사용자가" not in closed.content.decode() and "FAILURE_TYPE_PG" not in closed.content.decode()
    assert "카드사 승인" not in declined.content.decode()
    assert 'Error code: <code class="pgpay-code">FAILURE_TYPE_PG</code>' in declined.content.decode()


@pytest.mark.urls(__name__)
def test_a_held_order_gets_a_try_again_link_from_the_shop(buyer, other_buyer, toss_booking, toss_api):
    booking = toss_booking(expires_at=timezone.now() + datetime.timedelta(minutes=30))
    mine, stranger = Client(), Client()
    mine.force_login(buyer)
    stranger.force_login(other_buyer)
    page = mine.get(f"/retry/toss/fail/?{fail_query(booking, 'REJECT_CARD_COMPANY')}").content.decode()
    assert f'href="/book/{booking.seat_id}/" id="pgpay-retry"' in page
    assert "You can try again" not in page  # the link says it
    # Not the buyer's order: no link to it.
    assert "pgpay-retry" not in stranger.get(f"/retry/toss/fail/?{fail_query(booking, 'REJECT_CARD_COMPANY')}").content.decode()
    # Past its hold, or closed: nothing to pay again.
    assert "is kept until" in page
    type(booking).objects.filter(pk=booking.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    lapsed = mine.get(f"/retry/toss/fail/?{fail_query(booking, 'REJECT_CARD_COMPANY')}").content.decode()
    # Past its hold: no link, and no "kept until" a time gone by (a review of the page); it says the order is closed.
    assert "pgpay-retry" not in lapsed and "is kept until" not in lapsed and "This order is closed" in lapsed
    type(booking).objects.filter(pk=booking.pk).update(status=S.EXPIRED, expires_at=timezone.now() + datetime.timedelta(minutes=5))
    assert "pgpay-retry" not in mine.get(f"/retry/toss/fail/?{fail_query(booking, 'REJECT_CARD_COMPANY')}").content.decode()


def test_without_a_retry_url_the_page_has_no_link_and_a_closed_window_shows_no_code(client, buyer, toss_booking, toss_api):
    booking = toss_booking()
    client.force_login(buyer)
    page = client.get(f"/pay/toss/fail/?{fail_query(booking, 'PAY_PROCESS_CANCELED')}").content.decode()
    assert "pgpay-retry" not in page
    assert "PAY_PROCESS_CANCELED" not in page and "Error code" not in page
