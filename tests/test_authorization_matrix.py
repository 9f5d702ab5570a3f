"""Who may do what to a paid order: every role against every action, the exact answer, and nothing changed when refused.

Roles: nobody (anonymous), another buyer, staff without permissions, staff
with the model's view permission only, staff with the refund (change)
permission, the order's buyer. The rule (``django_pgpay.permissions``,
``docs/security.rst``): buyers act on their own orders, staff through Django
permissions, ``is_staff`` alone grants nothing.
"""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "other buyer", "staff without permissions", "staff who may view", "staff who may refund", "the buyer"]

#: action -> role -> expected HTTP status (302 to the login page for nobody).
EXPECTED = {
    "cancel everything": {
        "anonymous": 302,
        "other buyer": 404,
        "staff without permissions": 404,
        "staff who may view": 404,
        "staff who may refund": 302,
        "the buyer": 302,
    },
    "cancel part": {
        "anonymous": 302,
        "other buyer": 404,
        "staff without permissions": 404,
        "staff who may view": 404,
        "staff who may refund": 302,
        "the buyer": 302,
    },
    "confirmation step": {
        "anonymous": 302,
        "other buyer": 404,
        "staff without permissions": 404,
        "staff who may view": 404,
        "staff who may refund": 200,
        "the buyer": 200,
    },
    "invoice": {
        "anonymous": 302,
        "other buyer": 404,
        "staff without permissions": 404,
        "staff who may view": 200,
        "staff who may refund": 200,
        "the buyer": 200,
    },
    "admin refund": {
        "anonymous": 302,
        "other buyer": 302,
        "staff without permissions": 403,
        "staff who may view": 403,
        "staff who may refund": 302,
        "the buyer": 302,
    },
    "admin order page": {
        "anonymous": 302,
        "other buyer": 302,
        "staff without permissions": 403,
        "staff who may view": 200,
        "staff who may refund": 200,
        "the buyer": 302,
    },
    "admin refund action": {
        "anonymous": 302,
        "other buyer": 302,
        "staff without permissions": 403,
        "staff who may view": 302,
        "staff who may refund": 200,
        "the buyer": 302,
    },
}
#: Which (action, role) cells move money.
MOVES_MONEY = {
    ("cancel everything", "staff who may refund"),
    ("cancel everything", "the buyer"),
    ("cancel part", "staff who may refund"),
    ("cancel part", "the buyer"),
}


@pytest.fixture
def people(django_user_model, buyer, other_buyer, staff):
    def with_perms(name, *codenames):
        user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(content_type__app_label="testapp", codename__in=codenames))
        return user

    return {
        "anonymous": None,
        "other buyer": other_buyer,
        "staff without permissions": staff,
        "staff who may view": with_perms("viewer", "view_booking"),
        "staff who may refund": with_perms("refunder", "view_booking", "change_booking"),
        "the buyer": buyer,
    }


def act(client, action, order):
    number = order.order_number
    if action == "cancel everything":
        return client.post(f"/pay/cancel/{number}/", {"full": "1", "token": "m1", "confirm": "1"})
    if action == "cancel part":
        return client.post(f"/pay/cancel/{number}/", {"amount": "1000", "token": "m2", "confirm": "1"})
    if action == "confirmation step":
        return client.post(f"/pay/cancel/{number}/", {"full": "1", "token": "m3"})
    if action == "invoice":
        return client.get(reverse("django_pgpay:invoice", args=[number]))
    if action == "admin refund":
        return client.post(
            f"/admin/testapp/booking/{order.pk}/refund/", {"amount": "1000", "reason": "matrix", "token": "m4", "confirm": "yes"}
        )
    if action == "admin order page":
        return client.get(f"/admin/testapp/booking/{order.pk}/change/")
    if action == "admin refund action":
        return client.post("/admin/testapp/booking/", {"action": "refund_in_full", "_selected_action": [str(order.pk)]})
    raise ValueError(action)


@pytest.mark.parametrize("action", list(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_answer_and_changes_only_what_it_may(role, action, people, pay_booking, pg):
    order = pay_booking(amount=Decimal(20000))
    client = Client()
    if people[role] is not None:
        client.force_login(people[role])
    before = (order.status, order.canceled_amount, order.transactions.count())
    response = act(client, action, order)
    assert response.status_code == EXPECTED[action][role], (role, action, response.status_code)
    if response.status_code == 302 and people[role] is None:
        assert "login" in response["Location"]
    order.refresh_from_db()
    after = (order.status, order.canceled_amount, order.transactions.count())
    if (action, role) in MOVES_MONEY:
        assert order.canceled_amount > 0 and pg.count("cancel") == 1
    elif action != "admin refund" or role != "staff who may refund":
        assert after == before and pg.count("cancel") == 0, (role, action, before, after)
