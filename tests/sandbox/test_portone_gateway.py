"""Our PortOne gateways, unchanged, against the sandbox over a real socket: only API_BASE and JS_SDK_URL differ from PortOne.

Seed 003's flow through our views (prepare -> pay in the window -> verify ->
PAID), the tampered amount, token reuse, checksums and webhooks. The buyer's
window is played by the sandbox's Python API here; ``test_portone_browser.py``
plays it in Chromium.
"""

from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.test import Client

from django_pgpay import payments
from django_pgpay.exceptions import CancelRefused
from django_pgpay.models import WebhookEvent
from django_pgpay.permissions import buyer_token
from django_pgpay.sandbox import control
from django_pgpay.sandbox import portone as emulated
from django_pgpay.sandbox.base import emulator
from django_pgpay.status import OrderStatus as S
from django_pgpay.status import TransactionKind as K
from django_pgpay.status import TransactionStatus as T
from tests.testapp.models import Booking, Seat

from .portone_helpers import sandbox_portone, shop, v1, v2  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def book(client, seat, alias="portone"):
    # The same seat again after paying, on purpose (a buyer who has paid for it is asked first).
    response = client.post(f"/book/{seat.pk}/{alias}/", {"pgpay_another": "1"})
    assert response.status_code == 200, response.content[:500]
    return Booking.objects.filter(status=S.READY).latest("pk")


def v1_return(booking, rsp):
    return "/pay/portone/return/?" + urlencode(
        {"imp_uid": rsp["imp_uid"], "merchant_uid": rsp["merchant_uid"], "pgpay_t": buyer_token(rsp["merchant_uid"])}
    )


def ledger(order):
    return [(r.kind, r.status, r.amount) for r in order.transactions.order_by("pk")]


@pytest.fixture
def cancels(monkeypatch):
    """The bodies of every POST /payments/cancel the sandbox received (the live server runs in this process)."""
    sandbox = emulator("portone")
    seen = []
    original = sandbox.api_cancel

    def spy(ctx, **kwargs):
        seen.append(dict(ctx.data) if isinstance(ctx.data, dict) else ctx.data)
        return original(ctx, **kwargs)

    monkeypatch.setattr(sandbox, "api_cancel", spy)
    return seen


def test_seed_003_prepare_pay_verify_paid_then_cancel(shop, v1, buyer, seat, cancels):
    client = logged_in(buyer)
    booking = book(client, seat)
    # 1. The amount was registered with the sandbox before the window opened.
    assert emulated.token_requests() == 1
    assert v1.call("GET", f"/payments/prepare/{booking.order_number}").json()["response"]["amount"] == 20000
    # 2. The buyer pays in the window; the callback brings imp_uid back; the view verifies.
    rsp = emulated.pay(booking.order_number, 20000)
    done = client.get(v1_return(booking, rsp))
    assert done.status_code == 200 and b"Payment complete" in done.content
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_payment_id == rsp["imp_uid"] and booking.method == "card"
    assert booking.pg_data["portone_sandbox"] is True and booking.receipt_url.startswith("http")
    # 3. Cancel from the history page: one cancel, with the balance as checksum.
    response = client.post(f"/pay/cancel/{booking.order_number}/", {"next": "/history/", "token": "t1", "full": "1", "confirm": "1"})
    assert response.status_code == 302
    assert cancels == [{"imp_uid": rsp["imp_uid"], "checksum": 20000, "reason": "Cancelled by the customer"}]
    booking.refresh_from_db()
    assert booking.status == S.CANCELED and booking.balance == 0
    assert emulated.payment_state(rsp["imp_uid"])["status"] == "cancelled"
    assert (
        booking.transactions.get(kind=K.CANCEL).pg_transaction_id
        == emulated.payment_state(rsp["imp_uid"])["cancel_history"][0]["cancellation_id"]
    )
    assert emulated.token_requests() == 2  # the gateway's one token, and the test client's


def test_without_include_sandbox_a_sandbox_payment_never_pays(shop, buyer, seat):
    shop(INCLUDE_SANDBOX=False)
    client = logged_in(buyer)
    booking = book(client, seat)
    rsp = emulated.pay(booking.order_number, 20000)
    response = client.get(v1_return(booking, rsp))
    assert response.status_code == 404
    booking.refresh_from_db()
    assert booking.status == S.READY


def test_thirty_payments_in_a_row_cost_one_token_request(shop, buyer, seat):
    """The access token is fetched once and reused (each payment is a full round over HTTP: 30 prove it as 100 did, in a third of the time)."""
    Seat.objects.filter(pk=seat.pk).update(remain=30)
    client = logged_in(buyer)
    for _ in range(30):
        booking = book(client, seat)
        assert client.get(v1_return(booking, emulated.pay(booking.order_number, 20000))).status_code == 200
    assert Booking.objects.filter(status=S.PAID).count() == 30
    assert emulated.token_requests() == 1


def test_the_tampered_amount_never_pays_and_is_cancelled_once_with_its_checksum(shop, v1, buyer, seat, cancels):
    client = logged_in(buyer)
    booking = book(client, seat)
    # PortOne blocks the window the seed's tampered browser opens ...
    assert emulated.pay(booking.order_number, 100)["success"] is False
    # ... unless the developer fault lets it through (a PG without the check).
    emulated.allow_other_amount(booking.order_number)
    rsp = emulated.pay(booking.order_number, 100)
    response = client.get(v1_return(booking, rsp))
    assert response.status_code == 400 and b"The payment was not accepted and is being cancelled." in response.content
    booking.refresh_from_db()
    assert booking.status == S.FAILED and booking.paid_at is None
    assert ledger(booking) == [(K.CONFIRM, T.FAILED, Decimal(100)), (K.COMPENSATE, T.SUCCEEDED, Decimal(100))]
    assert cancels == [{"imp_uid": rsp["imp_uid"], "checksum": 100, "reason": "amount mismatch"}]
    assert emulated.payment_state(rsp["imp_uid"])["status"] == "cancelled"
    # A reload and a reconcile neither pay it nor cancel again.
    assert client.get(v1_return(booking, rsp)).status_code == 409
    payments.reconcile(booking, deep=True)
    booking.refresh_from_db()
    assert booking.status == S.FAILED and len(cancels) == 1


def test_a_checksum_mismatch_is_refused_and_nothing_more_goes_back(shop, buyer, seat, cancels):
    client = logged_in(buyer)
    booking = book(client, seat)
    rsp = emulated.pay(booking.order_number, 20000)
    client.get(v1_return(booking, rsp))
    emulated.cancel_in_console(rsp["imp_uid"], 3000)  # the shop does not know
    booking.refresh_from_db()
    with pytest.raises(CancelRefused):
        payments.cancel(booking, Decimal(5000), reason="부분 취소")
    assert cancels[0]["checksum"] == 20000
    assert emulated.payment_state(rsp["imp_uid"])["cancel_amount"] == 3000
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.canceled_amount == 0
    payments.reconcile(booking, deep=True)  # finds the console's cancel
    booking.refresh_from_db()
    assert booking.canceled_amount == Decimal(3000)
    payments.cancel(booking, Decimal(5000), reason="부분 취소")
    assert cancels[-1]["checksum"] == 17000 and cancels[-1]["amount"] == 5000
    assert emulated.payment_state(rsp["imp_uid"])["cancel_amount"] == 8000


def test_a_token_revoked_mid_flow_is_replaced_once(shop, buyer, seat):
    client = logged_in(buyer)
    first = book(client, seat)
    assert client.get(v1_return(first, emulated.pay(first.order_number, 20000))).status_code == 200
    emulated.revoke_tokens()
    second = book(client, seat)  # the prepare call gets a 401, takes a new token and goes on
    assert client.get(v1_return(second, emulated.pay(second.order_number, 20000))).status_code == 200
    assert Booking.objects.filter(status=S.PAID).count() == 2
    assert emulated.token_requests() == 2


def test_lookup_faults_leave_the_order_payable_then_it_pays(shop, buyer, seat):
    client = logged_in(buyer)
    booking = book(client, seat)
    rsp = emulated.pay(booking.order_number, 20000)
    control.arm_fault("portone", "lookup", "error_before", match=rsp["imp_uid"])
    response = client.get(v1_return(booking, rsp))
    assert response.status_code in (202, 502, 503), response.status_code
    booking.refresh_from_db()
    assert booking.status == S.READY
    # The next return (a reload) settles the open confirm by listing the order's attempts.
    control.arm_fault("portone", "lookup", "malformed_before", match=rsp["imp_uid"])
    assert client.get(v1_return(booking, rsp)).status_code in (200, 202, 502, 503)
    assert client.get(v1_return(booking, rsp)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID


def test_webhooks_are_applied_once(shop, buyer, seat, live_server, settings, sandbox_portone):
    shop(NOTICE_URL=False)
    sandbox_portone(WEBHOOK_URL=live_server.url + "/pay/portone/webhook/")
    client = logged_in(buyer)
    booking = book(client, seat)
    control.arm_fault("portone", "webhook", "duplicate", copies=2)
    emulated.pay(booking.order_number, 20000)  # the buyer never comes back: only the webhook tells
    first, *copies = [w.pk for w in control.pending_webhooks("portone")]
    assert len(copies) == 2
    assert [r.status_code for r in control.deliver_webhooks([first])] == [200]
    booking.refresh_from_db()
    assert booking.status == S.PAID
    after_one = ledger(booking)
    assert [r.status_code for r in control.deliver_webhooks(copies)] == [200, 200]
    booking.refresh_from_db()
    assert booking.status == S.PAID and ledger(booking) == after_one
    assert booking.transactions.filter(kind=K.CONFIRM, status=T.SUCCEEDED).count() <= 1
    assert WebhookEvent.objects.values("event_id").distinct().count() == 1


def test_virtual_account_then_deposit_by_webhook(shop, buyer, seat, live_server, settings, sandbox_portone):
    shop(NOTICE_URL=False)
    sandbox_portone(WEBHOOK_URL=live_server.url + "/pay/portone/webhook/")
    client = logged_in(buyer)
    booking = book(client, seat)
    rsp = emulated.pay(booking.order_number, 20000, outcome="vbank")
    assert client.get(v1_return(booking, rsp)).status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.WAITING_FOR_DEPOSIT and booking.pg_data["vbank_account_number"] == rsp["vbank_num"]
    emulated.deposit(rsp["imp_uid"])
    control.deliver_webhooks()
    booking.refresh_from_db()
    assert booking.status == S.PAID


# --- V2 ------------------------------------------------------------------------------------------


def test_v2_pre_register_pay_verify_cancel_and_signed_webhooks(shop, v2, buyer, seat, live_server, settings, sandbox_portone):
    shop(NOTICE_URL=False)
    sandbox_portone(V2_WEBHOOK_URL=live_server.url + "/pay/portone-v2/webhook/")
    client = logged_in(buyer)
    booking = book(client, seat, "portone-v2")
    assert emulated.v2_pay(booking.order_number, 100)["code"] == "FAILURE_TYPE_PROCESS"  # pre-registered: 20000
    emulated.v2_pay(booking.order_number, 20000)
    response = client.get(
        "/pay/portone-v2/return/?" + urlencode({"paymentId": booking.order_number, "pgpay_t": buyer_token(booking.order_number)})
    )
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.PAID and booking.pg_data["portone_sandbox"] is True
    payments.cancel(booking, Decimal(5000), reason="부분 취소")
    assert v2.payment(booking.order_number).json()["status"] == "PARTIAL_CANCELLED"
    # The webhooks (Paid, PartialCancelled) arrive signed; both are applied once, changing nothing more.
    results = control.deliver_webhooks()
    assert [r.status_code for r in results] == [200, 200]
    booking.refresh_from_db()
    assert booking.status == S.PARTIAL_CANCELED and booking.canceled_amount == Decimal(5000)
    assert booking.transactions.filter(kind=K.CANCEL).count() == 1
