"""A payment made into a virtual account is refunded to the bank account the buyer or staff give (over HTTP, the sandbox PGs).

A browser review in Korean: neither the buyer's cancel form nor the admin's refund form asked for
the account, and every PG refuses such a refund without one, so a deposited virtual account could
not be refunded through the shop at all (the bulk refund even counted it as refundable).
"""

import re

import pytest
import requests
from django.test import Client

from django_pgpay.status import OrderStatus as S
from tests.soak.world import _csrf
from tests.testapp.models import Booking

ALIASES = ["toss", "portone", "portone-v2", "bootpay"]
ACCOUNT = {"refund_bank": "088", "refund_number": "110-123-456789", "refund_holder": "박토스", "refund_phone": "010-1234-5678"}


def deposited(world, alias):
    checkout = world.checkout(0, alias)
    attempt = world.pay(checkout, account=True)
    world.come_back(0, checkout, attempt)
    world.deliver()
    assert world.deposit(attempt)
    world.deliver()
    order = Booking.objects.get(pk=checkout.order_pk)
    assert order.status == S.PAID and order.pg_data.get("vbank_account_number")
    return order


def held(world, order):
    return sum(p["held"] for p in world.at_pg(order.order_number))


def staff_session(world) -> requests.Session:
    client = Client()
    client.force_login(world.staff)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    session.get(f"{world.base}/admin/", timeout=30)  # the CSRF cookie
    return session


@pytest.mark.parametrize("alias", ALIASES)
def test_the_buyer_gives_the_account_on_the_confirmation_page(world, alias):
    order = deposited(world, alias)
    session = world.sessions[0]
    history = session.get(f"{world.base}/history/", timeout=30).text
    # The page's full cancel has no in-page "Refund now" for it: the confirmation page asks for the account.
    form = next(f for f in re.findall(r"<form\b.*?</form>", history, re.S) if order.order_number in f and 'name="full"' in f)
    assert 'name="confirm"' not in form
    url = f"{world.base}/pay/cancel/{order.order_number}/"
    headers = {"X-CSRFToken": _csrf(session), "Referer": world.base + "/"}
    fields = {"token": "vatok1", "full": "1", "next": "/history/", "csrfmiddlewaretoken": _csrf(session)}
    page = session.post(url, data=fields, headers=headers, allow_redirects=False, timeout=30)
    assert page.status_code == 200 and 'name="refund_number"' in page.text and 'name="refund_bank"' in page.text
    # Confirmed without an account (or with a bad one): the page again, 400, nothing refunded at the PG.
    for bad in ({}, {**ACCOUNT, "refund_number": "12"}, {**ACCOUNT, "refund_holder": " "}, {**ACCOUNT, "refund_bank": "999"}):
        again = session.post(url, data={**fields, **bad, "confirm": "1"}, headers=headers, allow_redirects=False, timeout=30)
        assert again.status_code == 400 and 'name="refund_number"' in again.text, bad
    order.refresh_from_db()
    assert order.status == S.PAID and held(world, order) == order.amount
    assert not order.transactions.filter(kind="cancel").exists()
    done = session.post(url, data={**fields, **ACCOUNT, "confirm": "1"}, headers=headers, allow_redirects=False, timeout=30)
    assert done.status_code == 302
    order.refresh_from_db()
    assert order.status == S.CANCELED and held(world, order) == 0
    assert not world.check(), world.check()


@pytest.mark.parametrize("alias", ALIASES)
def test_staff_give_the_account_in_the_admin_refund_form(world, alias):
    order = deposited(world, alias)
    staff = staff_session(world)
    change = staff.get(f"{world.base}/admin/testapp/booking/{order.pk}/change/", timeout=30).text
    assert 'name="refund_number"' in change and 'name="refund_holder"' in change
    url = f"{world.base}/admin/testapp/booking/{order.pk}/refund/"
    fields = {"amount": "10000", "reason": "환불", "token": "admintok1", "csrfmiddlewaretoken": _csrf(staff)}
    refused = staff.post(url, data=fields, allow_redirects=False, timeout=30)
    assert refused.status_code == 400 and "errorlist" in refused.text
    step = staff.post(url, data={**fields, **ACCOUNT}, allow_redirects=False, timeout=30)
    assert step.status_code == 200 and 'id="pgpay-confirm-account"' in step.text and "110123456789" in step.text
    done = staff.post(url, data={**fields, **ACCOUNT, "confirm": "yes"}, allow_redirects=False, timeout=30)
    assert done.status_code == 302
    order.refresh_from_db()
    assert order.status == S.PARTIAL_CANCELED and order.canceled_amount == 10000
    assert held(world, order) == order.amount - 10000
    assert not world.check(), world.check()


def test_the_bulk_refund_leaves_an_order_paid_into_a_virtual_account_to_its_page(world):
    order = deposited(world, "toss")
    staff = staff_session(world)
    url = f"{world.base}/admin/testapp/booking/"
    action = {"action": "refund_in_full", "_selected_action": [str(order.pk)], "csrfmiddlewaretoken": _csrf(staff)}
    page = staff.post(url, data=action, allow_redirects=False, timeout=30).text
    assert "refund it from its order page" in page
    # Confirmed anyway (a page from before, or made up): nothing is refunded, staff are told where to go.
    staff.post(url, data={**action, "post": "yes", "reason": "일괄 환불", "token": "bulk1"}, allow_redirects=False, timeout=30)
    order.refresh_from_db()
    assert order.status == S.PAID and held(world, order) == order.amount
    assert not order.transactions.filter(kind="cancel").exists()


def test_a_card_payment_after_a_withdrawn_account_is_refunded_to_the_card(world):
    """Review of the refund accounts: a PortOne V1 account issued, then the order paid by card (the account
    withdrawn); its fields stayed in pg_data, and the card's cancel asked for a bank account (and sent it)."""
    from django_pgpay import refund_accounts

    checkout = world.checkout(0, "portone")
    vbank = world.pay(checkout, account=True)
    world.come_back(0, checkout, vbank)
    world.deliver()
    card = world.pay(checkout)
    world.come_back(0, checkout, card)
    world.deliver()
    order = Booking.objects.get(pk=checkout.order_pk)
    assert order.status == S.PAID and order.pg_payment_id == card.payment_id
    assert not refund_accounts.needed(order)
    response = world.buyer_cancel(0, order.order_number, None)
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == S.CANCELED and held(world, order) == 0
    assert not world.check(), world.check()
