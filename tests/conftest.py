import datetime
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone, translation

from django_pgpay.conf import get_gateway
from django_pgpay.gateways.fake import fake_pg

#: Per-PG fixtures (toss, toss_api, toss_booking; stripe, stripe_api, stripe_booking; bootpay ...;
#: portone ...) and their mocked APIs.
pytest_plugins = ["tests.toss_support", "tests.stripe_support", "tests.bootpay_support", "tests.portone_support"]

# --- browser (e2e) tests ---------------------------------------------------------
#
# Playwright's sync API runs an event loop in the test thread; tests with a live
# server use the ORM from that thread between browser steps.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

#: Where tests leave what a person should look at (screenshots, rendered PDFs).
ARTIFACTS = Path(os.environ.get("PGPAY_ARTIFACTS_DIR", "artifacts"))

#: Debian's Chromium (never a browser Playwright downloads), quiet and offline.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def base_url():
    """Replaces pytest-playwright's fallback ``base_url`` (a plugin-instance fixture
    that pytest 9.2 deprecates, an error under ``-W error::DeprecationWarning``)."""
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium with :data:`CHROMIUM_ARGS`."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(autouse=True)
def _fresh_fake_pg():
    """Every test starts with an empty fake PG."""
    fake_pg("fake").reset()
    yield
    fake_pg("fake").reset()


@pytest.fixture(autouse=True)
def _default_language():
    """Every test starts in the default language: LocaleMiddleware leaves a request's language active in the thread."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def pg():
    """The fake PG account behind the ``fake`` gateway."""
    return fake_pg("fake")


@pytest.fixture
def gateway():
    return get_gateway("fake")


@pytest.fixture
def buyer(django_user_model):
    return django_user_model.objects.create_user("buyer", password="pw-buyer")


@pytest.fixture
def other_buyer(django_user_model):
    return django_user_model.objects.create_user("other", password="pw-other")


@pytest.fixture
def staff(django_user_model):
    """A staff account with no permissions: it may refund nothing and read no other buyer's order."""
    return django_user_model.objects.create_user("staff", password="pw-staff", is_staff=True)


@pytest.fixture
def refund_staff(django_user_model):
    """A staff account with the change (refund) and view permissions of the test shop's order models."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("refunds", password="pw-refunds", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="testapp", codename__in=["change_booking", "view_booking", "change_cartorder", "view_cartorder"]
        )
    )
    return user


@pytest.fixture
def seat(db):
    from tests.testapp.models import Restaurant, Seat, Table

    restaurant = Restaurant.objects.create(name="한우집", address="서울특별시 강남구")
    table = Restaurant.objects.get(pk=restaurant.pk).table_set.create(price=Decimal(20000))
    assert isinstance(table, Table)
    return Seat.objects.create(table=table, datetime=timezone.now() + datetime.timedelta(days=1), remain=3)


@pytest.fixture
def make_booking(seat, buyer):
    """A READY booking that took one seat, as the checkout view makes it."""
    from tests.testapp.models import Booking

    def make(amount=Decimal(20000), user=None, **fields):
        booking = Booking(seat=seat, amount=amount, user=user or buyer, **fields)
        assert booking.reserve()
        booking.save()
        return booking

    return make


@pytest.fixture
def pay_booking(make_booking, pg, seat):
    """Make and pay bookings through the fake PG: ``pay_booking(amount=..., **fields)``; the seat holds 50."""
    from django_pgpay import payments

    seat.remain = 50
    seat.save()

    def make(amount=Decimal(20000), **fields):
        booking = make_booking(amount=amount, **fields)
        payments.confirm(booking, payment_id=pg.authorize(booking.order_number, booking.amount), amount=booking.amount)
        return booking

    return make


@pytest.fixture
def paid_booking(make_booking, pg):
    """A booking paid in full through the fake PG."""
    from django_pgpay import payments

    booking = make_booking()
    payment_id = pg.authorize(booking.order_number, booking.amount)
    payments.confirm(booking, payment_id=payment_id, amount=booking.amount)
    assert booking.status == "PAID"
    return booking
