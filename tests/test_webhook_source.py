"""A gateway may refuse webhook deliveries by their source address (before reading them)."""

import json

import pytest

from django_pgpay import webhooks
from django_pgpay.exceptions import WebhookVerificationError
from django_pgpay.gateways.fake import FakeGateway
from django_pgpay.models import WebhookEvent

pytestmark = pytest.mark.django_db


class AllowlistedFake(FakeGateway):
    """The fake PG, accepting deliveries only from 10.0.0.7."""

    def __init__(self, alias, options):
        super().__init__(alias, options)
        self.parsed = 0

    def check_webhook_source(self, remote_addr, headers):
        if remote_addr != "10.0.0.7":
            raise WebhookVerificationError(f"{remote_addr} is not allowed")

    def parse_received_webhook(self, headers, body, *, received_at):
        self.parsed += 1
        return super().parse_received_webhook(headers, body, received_at=received_at)


def test_a_refused_source_is_403_kept_and_never_parsed(pg):
    gateway = AllowlistedFake("fake", {})
    body = json.dumps({"payment_id": "fake_x", "order_number": "ORDER_000001"}).encode()
    receipt = webhooks.receive(gateway, headers={"User-Agent": "x"}, body=body, remote_addr="192.0.2.1")
    assert receipt.status == 403 and not receipt.accepted
    event = WebhookEvent.objects.get()
    assert (event.processed, event.verified, event.remote_addr) == (False, False, "192.0.2.1")
    assert event.error == "refused source: 192.0.2.1 is not allowed"
    assert gateway.parsed == 0 and pg.calls == []


def test_the_default_accepts_every_source(pg):
    gateway = FakeGateway("fake", {})
    assert gateway.check_webhook_source(None, {}) is None
    receipt = webhooks.receive(gateway, headers={}, body=b'{"type": "OTHER"}', remote_addr=None)
    assert receipt.status == 400 and WebhookEvent.objects.get().error.startswith("malformed")


def test_an_allowed_source_goes_on_to_verification(pg):
    gateway = AllowlistedFake("fake", {})
    body = json.dumps({"payment_id": "fake_unknown"}).encode()
    receipt = webhooks.receive(gateway, headers={}, body=body, remote_addr="10.0.0.7")
    assert gateway.parsed == 1
    assert receipt.status == 400 and "not verified" in WebhookEvent.objects.get().error
