"""The webhook log hands each delivery's arrival time to the gateway (for timestamped signatures)."""

import datetime

import pytest
from django.utils import timezone

from django_pgpay import webhooks
from django_pgpay.conf import get_gateway
from django_pgpay.gateways.fake import FakeGateway
from django_pgpay.models import WebhookEvent

pytestmark = pytest.mark.django_db


class ClockedGateway(FakeGateway):
    """The fake PG, noting the arrival time the log gives with each delivery."""

    seen: list = []

    def parse_received_webhook(self, headers, body, *, received_at):
        type(self).seen.append(received_at)
        return super().parse_received_webhook(headers, body, received_at=received_at)


@pytest.fixture
def clocked(settings):
    ClockedGateway.seen = []
    gateways = {**settings.PGPAY["GATEWAYS"], "clocked": {"CLASS": "tests.test_webhook_log.ClockedGateway", "OPTIONS": {}}}
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways}
    return get_gateway("clocked")


def test_the_default_parses_as_before(gateway):
    event = gateway.parse_received_webhook({}, b'{"payment_id": "fake_1", "event_id": "e1"}', received_at=timezone.now())
    assert (event.payment_id, event.event_id) == ("fake_1", "e1")


def test_a_delivery_processed_again_is_parsed_as_of_its_arrival(clocked):
    receipt = webhooks.receive(clocked, headers={}, body=b'{"payment_id": "fake_unknown", "event_id": "e1"}')
    stored = WebhookEvent.objects.get()
    assert receipt.status == 400 and not stored.processed  # the fake PG knows no such payment
    assert ClockedGateway.seen == [stored.received_at]

    arrived = timezone.now() - datetime.timedelta(hours=5)
    WebhookEvent.objects.filter(pk=stored.pk).update(received_at=arrived)
    stored.refresh_from_db()
    webhooks.process(stored)  # from the admin or a shell, hours later
    assert ClockedGateway.seen[-1] == arrived
