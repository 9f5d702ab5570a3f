"""What the webhook log keeps of a delivery whose body holds a secret (a PG that signs nothing).

Attack review (generated input): the masking re-wrote the parsed body before any check, on every
anonymous POST. An escaped lone surrogate came out raw (a 500, the delivery not logged), a number
like ``1E+5000`` was turned into its digits (a 500) and ``1E+400000`` took seconds of CPU first.
"""

import time

import pytest
from django.test import Client

from django_pgpay import webhooks
from django_pgpay.conf import get_gateway
from django_pgpay.models import WebhookEvent

pytestmark = pytest.mark.django_db

UNSIGNED = ["toss", "bootpay", "portone"]


def post(alias, body: bytes):
    return Client(raise_request_exception=False).post(f"/pay/{alias}/webhook/", data=body, content_type="application/json")


@pytest.mark.parametrize("alias", UNSIGNED)
def test_an_escaped_lone_surrogate_beside_a_secret_is_refused_and_logged(alias, toss, bootpay, portone):
    response = post(alias, b'{"secret": "s3cr3t", "orderId": "\\udc00", "eventType": "PAYMENT_STATUS_CHANGED"}')
    assert response.status_code == 400
    stored = WebhookEvent.objects.get().body
    assert "s3cr3t" not in stored and "\ufffd" in stored


@pytest.mark.parametrize("alias", UNSIGNED)
@pytest.mark.parametrize("number", ["1E+5000", "1E+400000", "-1e-400000", "123456789012345678901234567890.5"])
def test_a_number_beside_a_secret_is_kept_as_spelled_without_work(alias, number, toss, bootpay, portone):
    body = b'{"secret": "s3cr3t", "n": ' + number.encode() + b', "k": 7}'
    started = time.process_time()
    response = post(alias, body)
    assert time.process_time() - started < 0.5  # 1E+400000 took about 4 s of CPU
    assert response.status_code == 400
    stored = WebhookEvent.objects.get().body
    assert stored == '{"secret": "***", "n": ' + number + ', "k": 7}'


def test_masking_keeps_text_numbers_and_structure(toss):
    gateway = get_gateway("toss")
    body = '{"secret": "s3cr3t", "orderId": "주문-1", "totalAmount": 20000, "rate": 0.10, "items": [1, 2.50, null, true]}'
    assert webhooks.storable_body(gateway, body.encode()) == (
        '{"secret": "***", "orderId": "주문-1", "totalAmount": 20000, "rate": 0.10, "items": [1, 2.50, null, true]}'
    )
    # Nothing to mask: kept byte for byte.
    plain = b'{"orderId": "a",   "n": 1E+9}'
    assert webhooks.storable_body(gateway, plain) == plain.decode()
