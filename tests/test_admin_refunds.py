"""Refunds from the admin: the full-refund action with its confirmation page, and the order page's
refund in two steps (check and show, then confirm), each sent twice refunding once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages

from django_pgpay import payments
from django_pgpay.status import TransactionKind, TransactionSource, TransactionStatus
from tests.testapp.models import BookingTransaction

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/testapp/booking/"


@pytest.fixture
def paid(pay_booking):
    return pay_booking


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def cancels(order):
    return list(BookingTransaction.objects.filter(order=order, kind=TransactionKind.CANCEL).order_by("pk"))


def action(client, orders, **extra):
    return client.post(CHANGELIST, {"action": "refund_in_full", "_selected_action": [o.pk for o in orders], **extra})


# --- full refunds (action) -------------------------------------------------------------


def test_confirmation_page_lists_what_will_and_will_not_be_refunded(admin_client, paid, make_booking, pg):
    one, two = paid(Decimal(20000)), paid(Decimal(12000))
    payments.cancel(two, Decimal(2000), reason="part")
    unpaid = make_booking()
    cancels_before = pg.count("cancel")
    response = action(admin_client, [one, two, unpaid])
    assert response.status_code == 200
    page = response.content.decode()
    refundable = response.context["refundable"]
    assert {o.order_number: amount for o, amount, _pg in refundable} == {one.order_number: "₩20,000", two.order_number: "₩10,000"}
    assert [o.order_number for o, _ in response.context["not_refundable"]] == [unpaid.order_number]
    assert "Awaiting payment: no payment to refund." in page
    assert 'name="csrfmiddlewaretoken"' in page and 'name="post" value="yes"' in page and 'name="reason"' in page
    assert '<td class="pgpay-num pgpay-money" id="pgpay-refund-total">₩30,000</td>' in page
    # The reason is required, and the page says so.
    assert 'class="required"' in page and "required" in page.split('name="reason"')[1].split(">")[0]
    assert "Required. It is kept in the ledger with each refund." in page
    # Nothing happened yet.
    assert pg.count("cancel") == cancels_before
    one.refresh_from_db()
    assert one.status == "PAID"


def test_confirmed_refund_records_staff_and_reason(admin_client, admin_user, paid, make_booking, seat):
    one, two = paid(), paid()
    unpaid = make_booking()
    token = action(admin_client, [one, two, unpaid]).context["form"]["token"].value()
    response = action(admin_client, [one, two, unpaid], post="yes", reason="가게 사정으로 취소", token=token)
    assert response.status_code == 302
    assert "2 orders refunded in full." in texts(response)
    for order in (one, two):
        order.refresh_from_db()
        assert order.status == "CANCELED" and order.balance == 0
        (row,) = cancels(order)
        assert row.status == TransactionStatus.SUCCEEDED
        assert row.source == TransactionSource.STAFF
        assert row.actor == admin_user
        assert row.reason == "가게 사정으로 취소"
        assert row.amount == Decimal(20000)
    unpaid.refresh_from_db()
    assert unpaid.status == "READY" and cancels(unpaid) == []


def test_an_account_awaiting_its_deposit_is_closed_not_counted_as_money_to_refund(admin_client, paid, make_booking, pg):
    """Found on the demo: the action listed awaiting-deposit orders under "To refund" with their whole
    amount in the total, though nothing was paid. They are listed apart, outside the total, and the
    message after says accounts were closed, not orders refunded."""
    one = paid(Decimal(20000))
    waiting = make_booking(amount=Decimal(50000))
    payments.confirm(waiting, payment_id=pg.authorize(waiting.order_number, waiting.amount, virtual_account=True))
    assert waiting.status == "WAITING_FOR_DEPOSIT"
    response = action(admin_client, [one, waiting])
    assert [o.order_number for o, _amount, _pg in response.context["refundable"]] == [one.order_number]
    assert [o.order_number for o, _amount, _pg in response.context["to_close"]] == [waiting.order_number]
    page = response.content.decode()
    assert '<td class="pgpay-num pgpay-money" id="pgpay-refund-total">₩20,000</td>' in page
    assert "Nothing has been paid into these accounts, so nothing is refunded" in page
    closing = page[page.index('<table id="pgpay-to-close"') :]
    closing = closing[: closing.index("</table>")]
    assert waiting.order_number in closing and "₩50,000" in closing and ">Amount</th>" in closing
    assert "<tfoot>" not in closing and one.order_number not in closing  # outside the total
    token = response.context["form"]["token"].value()
    done = action(admin_client, [one, waiting], post="yes", reason="가게 사정", token=token)
    assert done.status_code == 302
    assert texts(done) == ["1 order refunded in full.", "1 virtual account closed (nothing had been paid into it)."]
    waiting.refresh_from_db()
    assert waiting.status == "EXPIRED" and waiting.canceled_amount == 0 and cancels(waiting) == []
    assert BookingTransaction.objects.get(order=waiting, kind=TransactionKind.WITHDRAW).status == TransactionStatus.SUCCEEDED


def test_resubmitting_the_confirmation_refunds_once(admin_client, paid, pg):
    order, other = paid(), paid()
    token = action(admin_client, [order, other]).context["form"]["token"].value()
    first = action(admin_client, [order, other], post="yes", reason="dup", token=token)
    second = action(admin_client, [order, other], post="yes", reason="dup", token=token)  # a double click
    assert len(cancels(order)) == 1 and len(cancels(other)) == 1 and pg.count("cancel") == 2
    assert "2 orders refunded in full." in texts(first)
    # The second answer says what happened: nothing (it said "2 orders refunded in full." again
    # until an attack review of 7 December 2026).
    # (The first answer's message is still in the storage: nothing rendered it.)
    assert texts(second) == [
        "2 orders refunded in full.",
        "2 orders were already refunded by this form (it was sent twice); nothing more was done.",
    ]


def test_confirmation_without_reason_is_a_400_and_changes_nothing(admin_client, paid, pg):
    order = paid()
    response = action(admin_client, [order], post="yes", reason="  ", token="abc")
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    order.refresh_from_db()
    assert order.status == "PAID" and pg.count("cancel") == 0


def test_pg_refusal_is_shown_as_an_error_message(admin_client, paid, pg):
    refused, fine = paid(), paid()
    pg.fail_next("cancel", "refuse")
    response = action(admin_client, [refused, fine], post="yes", reason="r", token="tok1")
    assert response.status_code == 302
    messages = texts(response)
    errors = [m for m in messages if "refused the refund" in m]
    assert len(errors) == 1 and "code" in errors[0]
    assert "1 order refunded in full." in messages
    statuses = set()
    for order in (refused, fine):
        order.refresh_from_db()
        statuses.add(order.status)
    assert statuses == {"PAID", "CANCELED"}


# --- refunds from the order page: two steps ---------------------------------------------------


def refund(client, order, amount, reason="부분 환불", token="tok", confirm=True):
    """Both steps (``confirm=False``: only the first); returns the last response."""
    url = f"{CHANGELIST}{order.pk}/refund/"
    data = {"amount": amount, "reason": reason, "token": token}
    first = client.post(url, data)
    if not confirm or first.status_code != 200:
        return first
    return client.post(url, {**data, "confirm": "yes"})


def test_the_first_step_shows_amount_and_balance_after_and_changes_nothing(admin_client, paid, pg):
    order = paid()
    response = refund(admin_client, order, "5,000", confirm=False)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Refund ₩5,000 to the buyer through Fake PG (for tests)?" in page
    assert '<dd id="pgpay-balance-after">₩15,000</dd>' in page and "₩20,000" in page
    assert 'name="confirm" value="yes"' in page and 'name="token" value="tok"' in page
    assert 'name="amount" value="5000"' in page
    assert "Yes, refund ₩5,000" in page
    order.refresh_from_db()
    assert order.status == "PAID" and order.canceled_amount == 0 and cancels(order) == [] and pg.count("cancel") == 0


def test_an_order_awaiting_its_deposit_offers_to_close_the_account_not_to_refund_an_amount(admin_client, make_booking, pg):
    """Its page said "Amount to refund ... at most ₩50,000 (what is left of the payment)" beside
    "paid ₩0": nothing was paid. It offers to close the account, the step page asks that, and the
    confirmed step withdraws the account, refunds nothing and says so."""
    waiting = make_booking(amount=Decimal(50000))
    payments.confirm(waiting, payment_id=pg.authorize(waiting.order_number, waiting.amount, virtual_account=True))
    page = admin_client.get(f"{CHANGELIST}{waiting.pk}/change/").content.decode()
    panel = page.split('id="pgpay-refund"', 1)[1].split("</section>", 1)[0]
    assert "Close the virtual account" in panel and "Whole balance" not in panel and "Amount to refund" not in panel
    step = refund(admin_client, waiting, "50000", reason="고객 요청", confirm=False)
    assert step.status_code == 200
    assert "Close this order's virtual account at Fake PG (for tests)?" in step.content.decode()
    assert "Yes, close it" in step.content.decode() and pg.count("cancel") == 0
    done = refund(admin_client, waiting, "50000", reason="고객 요청")
    assert done.status_code == 302
    assert texts(done) == [f"The virtual account of order {waiting.order_number} was closed; nothing had been paid into it."]
    waiting.refresh_from_db()
    assert waiting.status == "EXPIRED" and waiting.canceled_amount == 0 and cancels(waiting) == []
    assert BookingTransaction.objects.get(order=waiting, kind=TransactionKind.WITHDRAW).status == TransactionStatus.SUCCEEDED


def test_the_first_step_in_korean_warns_when_everything_goes_back(admin_client, paid):
    order = paid()
    response = admin_client.post(
        f"{CHANGELIST}{order.pk}/refund/", {"amount": "20000", "reason": "r", "token": "t"}, HTTP_ACCEPT_LANGUAGE="ko"
    )
    page = response.content.decode()
    assert "구매자에게 20,000원을 환불할까요?" in page and "환불 후 잔액" in page and "0원" in page
    assert "남은 금액을 모두 환불합니다" in page


def test_partial_refund_records_staff_and_reason(admin_client, admin_user, paid):
    order = paid()
    response = refund(admin_client, order, "5,000", token="p1")
    assert response.status_code == 302 and response["Location"].endswith(f"/{order.pk}/change/")
    assert f"Refunded ₩5,000 of order {order.order_number}." in texts(response)
    order.refresh_from_db()
    assert order.status == "PARTIAL_CANCELED" and order.balance == Decimal(15000)
    (row,) = cancels(order)
    assert (row.amount, row.source, row.actor, row.reason) == (Decimal(5000), "staff", admin_user, "부분 환불")
    # The rest, in a second refund.
    refund(admin_client, order, "15000", token="p2")
    order.refresh_from_db()
    assert order.status == "CANCELED" and len(cancels(order)) == 2


def test_a_double_clicked_confirmation_refunds_once(admin_client, paid, pg):
    order = paid()
    url = f"{CHANGELIST}{order.pk}/refund/"
    data = {"amount": "20000", "reason": "전액", "token": "dbl", "confirm": "yes"}
    first = admin_client.post(url, data)
    second = admin_client.post(url, data)  # the balance is 0 now: the same token is a replay, not an error
    assert first.status_code == 302 and second.status_code == 302
    assert len(cancels(order)) == 1 and pg.count("cancel") == 1
    assert any("already made" in m for m in texts(second))
    order.refresh_from_db()
    assert order.status == "CANCELED" and order.canceled_amount == Decimal(20000)


def test_a_confirmation_beyond_the_balance_is_a_400(admin_client, paid, pg):
    order = paid()
    payments.cancel(order, Decimal(15000), reason="meanwhile")  # someone else refunded in between
    response = admin_client.post(f"{CHANGELIST}{order.pk}/refund/", {"amount": "10000", "reason": "r", "token": "late", "confirm": "yes"})
    assert response.status_code == 400
    assert "exceeds what is left (₩5,000)" in response.content.decode()
    order.refresh_from_db()
    assert order.canceled_amount == Decimal(15000) and pg.count("cancel") == 1


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("20001", "exceeds what is left"),
        ("-1", "more than zero"),
        ("0", "more than zero"),
        ("1,0,0,0", "Type the amount in KRW as digits"),
        (",", "Type the amount in KRW as digits"),
        ("12.5", "without a decimal point"),
        ("1.000", "without a decimal point"),  # one thousand, European style: never read as 1 won
        ("abc", "Type the amount in KRW as digits"),
        ("1e3", "Type the amount in KRW as digits"),
        ("", "This field is required."),
    ],
)
@pytest.mark.parametrize("confirm", [False, True])
def test_bad_partial_amounts_are_refused_and_change_nothing(admin_client, paid, pg, amount, message, confirm):
    order = paid()
    data = {"amount": amount, "reason": "r", "token": "bad", **({"confirm": "yes"} if confirm else {})}
    response = admin_client.post(f"{CHANGELIST}{order.pk}/refund/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    order.refresh_from_db()
    assert order.status == "PAID" and order.canceled_amount == 0 and cancels(order) == []
    assert pg.count("cancel") == 0


def test_refund_without_reason_is_refused(admin_client, paid):
    order = paid()
    response = refund(admin_client, order, "1000", reason="")
    assert response.status_code == 400
    order.refresh_from_db()
    assert order.canceled_amount == 0


def test_usd_partial_refund_takes_cents(admin_client, make_booking, pg):
    order = make_booking(amount=Decimal("30.00"), currency="USD")
    payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount, "USD"), amount=order.amount)
    assert "Refund $10.25 to the buyer" in refund(admin_client, order, "10.25", confirm=False).content.decode()
    assert refund(admin_client, order, "10.25").status_code == 302
    order.refresh_from_db()
    assert order.balance == Decimal("19.75")
    assert refund(admin_client, order, "1.234", token="t2").status_code == 400


def test_partial_refund_refused_by_the_pg_is_a_message_not_a_500(admin_client, paid, pg):
    order = paid()
    pg.fail_next("cancel", "refuse")
    response = refund(admin_client, order, "1000")
    assert response.status_code == 302
    (message,) = texts(response)
    assert "Fake PG (for tests) refused the refund of order" in message and order.order_number in message
    order.refresh_from_db()
    assert order.status == "PAID" and order.canceled_amount == 0
    (row,) = cancels(order)
    assert row.status == TransactionStatus.FAILED and row.error_code


def test_unanswered_refund_is_a_warning(admin_client, paid, pg):
    order = paid()
    pg.fail_next("cancel", "timeout_after")
    response = refund(admin_client, order, "1000")
    assert response.status_code == 302
    assert any("has not answered" in m for m in texts(response))


def test_refund_of_a_fully_refunded_order_is_refused(admin_client, paid):
    order = paid()
    payments.cancel(order, payments.FULL, reason="all")
    response = refund(admin_client, order, "1", confirm=False)
    assert response.status_code == 400
    assert "nothing left to refund" in response.content.decode()


def test_get_on_the_refund_url_changes_nothing(admin_client, paid, pg):
    order = paid()
    response = admin_client.get(f"{CHANGELIST}{order.pk}/refund/")
    assert response.status_code == 302 and response["Location"].endswith("/change/")
    assert pg.count("cancel") == 0


def test_staff_without_the_refund_permission_cannot_take_either_step(client, django_user_model, paid, pg):
    from django.contrib.auth.models import Permission

    order = paid()
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_booking"))
    client.force_login(viewer)
    url = f"{CHANGELIST}{order.pk}/refund/"
    assert client.post(url, {"amount": "1000", "reason": "r", "token": "t"}).status_code == 403
    assert client.post(url, {"amount": "1000", "reason": "r", "token": "t", "confirm": "yes"}).status_code == 403
    page = client.get(f"{CHANGELIST}{order.pk}/change/").content.decode()
    assert 'id="pgpay-refund-form"' not in page
    order.refresh_from_db()
    assert order.canceled_amount == 0 and pg.count("cancel") == 0


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("１０００", "1000"), ("1,000원", "1000"), ("₩1,000", "1000"), ("１，０００", "1000")],
)
def test_the_refund_form_reads_full_width_digits_and_the_won_sign(paid, typed, expected):
    """Browser review in Korean: these were refused as having 'more than 0 decimals'."""
    from django_pgpay.admin.forms import RefundForm

    form = RefundForm({"amount": typed, "reason": "환불", "token": "t1"}, order=paid())
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == Decimal(expected)


@pytest.mark.parametrize(
    ("typed", "code"),
    [("-1000", "not_positive"), ("−1000", "not_positive"), ("1 000", "invalid"), ("1000달러", "invalid"), ("0", "not_positive")],
)
def test_the_refund_form_says_what_is_wrong_with_an_amount(paid, typed, code):
    from django_pgpay.admin.forms import RefundForm

    form = RefundForm({"amount": typed, "reason": "환불", "token": "t1"}, order=paid())
    assert not form.is_valid()
    assert [e.code for e in form.errors.as_data()["amount"]] == [code]
    assert "decimals" not in str(form.errors["amount"])
