"""The shared HTTP layer of gateways: timeouts, safe retries, error context, no secrets."""

from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from django_pgpay.exceptions import GatewayError, GatewayUnavailable, redact
from django_pgpay.gateways.http import GatewayHttp, dumps_json, loads_json

BASE = "https://pg.example"


@pytest.fixture
def http():
    return GatewayHttp("toss", BASE, timeout=(1, 2))


@responses.activate
def test_post_sends_exact_json_and_is_never_retried(http):
    responses.post(
        f"{BASE}/v1/payments/confirm",
        status=503,
        json={"code": "X"},
        match=[
            matchers.body_matcher('{"amount": 15000, "usd": 181.56, "name": "주문"}'),
            matchers.header_matcher({"Idempotency-Key": "k1"}),
        ],
    )
    reply = http.request(
        "POST",
        "/v1/payments/confirm",
        json_body={"amount": 15000, "usd": Decimal("181.56"), "name": "주문"},
        headers={"Idempotency-Key": "k1"},
    )
    assert reply.status == 503 and reply.data == {"code": "X"}
    assert len(responses.calls) == 1


@responses.activate
def test_get_is_retried_on_gateway_errors(http):
    responses.get(f"{BASE}/v1/payments/pk", status=503)
    responses.get(f"{BASE}/v1/payments/pk", status=200, json={"amount": 15000.5})
    reply = http.request("GET", "/v1/payments/pk")
    assert reply.status == 200 and reply.data == {"amount": Decimal("15000.5")}
    assert len(responses.calls) == 2


@responses.activate
def test_timeouts_are_explicit_and_reported_as_unknown_outcome(http, monkeypatch):
    seen = {}
    original = requests.Session.request

    def spy(self, *args, **kwargs):
        seen["timeout"] = kwargs["timeout"]
        return original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    responses.post(f"{BASE}/v1/x", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(GatewayUnavailable) as info:
        http.request("POST", "/v1/x", json_body={})
    assert seen["timeout"] == (1, 2)
    assert info.value.sent is True and info.value.outcome_unknown
    assert info.value.gateway == "toss" and info.value.code == "TIMEOUT"


@responses.activate
def test_connect_failure_is_known_not_sent(http):
    responses.post(f"{BASE}/v1/x", body=requests.exceptions.ConnectTimeout("no route"))
    with pytest.raises(GatewayUnavailable) as info:
        http.request("POST", "/v1/x", json_body={})
    assert info.value.sent is False and not info.value.outcome_unknown


def test_real_refused_connection_is_not_sent():
    http = GatewayHttp("toss", "http://127.0.0.1:9", timeout=(0.5, 0.5), retries=0)
    with pytest.raises(GatewayUnavailable) as info:
        http.request("POST", "/v1/x", json_body={})
    assert info.value.sent is False


@responses.activate
def test_malformed_json_gives_no_data(http):
    responses.post(f"{BASE}/v1/x", body="<html>oops", status=200)
    reply = http.request("POST", "/v1/x", json_body={})
    assert reply.data is None and reply.text == "<html>oops"


def test_errors_and_reprs_hold_no_secret():
    error = GatewayError(
        "refused",
        gateway="toss",
        code="UNAUTHORIZED_KEY",
        http_status=401,
        response={"secret": "vbank-secret", "nested": [{"access_token": "tok"}], "code": "X"},
    )
    text = repr(error) + str(error) + str(error.response)
    assert "vbank-secret" not in text and "tok'" not in text
    assert error.response == {"secret": "***", "nested": [{"access_token": "***"}], "code": "X"}
    assert "sk_" not in repr(GatewayHttp("toss", BASE))
    assert redact({"Authorization": "Basic abc", "amount": 1}) == {"Authorization": "***", "amount": 1}


def test_decimal_json_round_trip():
    text = dumps_json({"a": Decimal("0.10"), "b": [Decimal("-1"), Decimal("12345678901234567890.5")], "s": "\u0000dec:9"})
    assert text == '{"a": 0.10, "b": [-1, 12345678901234567890.5], "s": "\\u0000dec:9"}'
    assert loads_json(text)["b"][1] == Decimal("12345678901234567890.5")
    with pytest.raises(ValueError):
        dumps_json({"x": Decimal("NaN")})


@pytest.mark.parametrize(
    ("amount", "written"),
    [("20000", "20000"), ("2E+4", "20000"), ("0", "0"), ("-0", "-0"), ("20000.000", "20000.000"), ("-3", "-3"), ("1E+25", "1" + "0" * 25)],
)
def test_decimals_are_written_with_their_own_digits(amount, written):
    """Whole Decimals take the short way (no marker); every Decimal keeps the digits ``f"{d:f}"`` gives it."""
    assert dumps_json({"amount": Decimal(amount), "s": "dec:1"}) == f'{{"amount": {written}, "s": "dec:1"}}'
    assert loads_json(dumps_json([Decimal(amount)]))[0] == Decimal(amount)


@pytest.mark.parametrize("text", ["1E+400000", "-1.5E-400000", "1E+40", "1E-42"])
def test_dumps_json_writes_a_huge_or_tiny_decimal_in_exponent_form_at_once(text):
    """An attack review: ``int(Decimal("1E+400000"))`` took seconds of CPU, and 1E+5000 was refused by json (4,300 digits)."""
    import time
    from decimal import Decimal

    from django_pgpay.gateways.http import dumps_json, loads_json

    started = time.process_time()
    written = dumps_json({"n": Decimal(text)})
    assert time.process_time() - started < 0.5
    assert written == '{"n": ' + text + "}" and loads_json(written) == {"n": Decimal(text)}
