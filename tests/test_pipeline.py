"""The call pipeline every HTTP gateway shares (gateways/pipeline.py), and the contracts of issue 16.

One error mapper driven by each PG's tables, consistent across PGs; malformed
replies handled in one place; the shared access-token cache; the default
confirm of PGs without a confirm call; ``parse_received_webhook`` as the one
webhook primitive; capabilities read from the configured instance; renamed
options accepted with a system check naming the new spelling.
"""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from django_pgpay import payments
from django_pgpay.exceptions import (
    AuthenticationFailed,
    CancelRefused,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    PgPayDeprecationWarning,
    UnsupportedFeature,
)
from django_pgpay.gateways.base import BaseGateway
from django_pgpay.gateways.bootpay import BootpayGateway
from django_pgpay.gateways.fake import FakeGateway
from django_pgpay.gateways.http import HttpReply
from django_pgpay.gateways.pipeline import HttpGateway
from django_pgpay.gateways.portone import PortOneV1Gateway, PortOneV2Gateway
from django_pgpay.gateways.results import (
    CancelRequest,
    ConfirmRequest,
    OrderSnapshot,
    ParsedWebhook,
    PaymentResult,
    PaymentState,
    RefundAccount,
    VirtualAccount,
)
from django_pgpay.gateways.stripe import StripeGateway
from django_pgpay.gateways.toss import TossGateway

BASE = "https://pg.example"
ORDER = OrderSnapshot(order_number="ORDER-1", amount=Decimal(15000), currency="KRW", order_name="x")


class TinyGateway(HttpGateway):
    """A made-up PG on the pipeline: ``{code, message}`` errors, a token from ``POST /token``."""

    pg_name = "Tiny"
    requires_confirm_call = False
    uses_access_token = True
    DEFAULT_API_BASE = BASE
    ERRORS = {"GONE": NotFound}

    def __init__(self, alias="tiny", options=None):
        super().__init__(alias, options or {})
        self.fetched = 0

    def fetch_token(self):
        self.fetched += 1
        reply = self.http.request("POST", "/token", json_body={})
        return str(reply.data["token"]), 1800.0

    def auth_headers(self, verb, token, idempotency_key=""):
        return {"Authorization": f"Bearer {token}", **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}

    def lookup(self, *, payment_id="", order=None):
        data = self.call("lookup", "GET", f"/payments/{payment_id}")
        return PaymentResult(
            state=PaymentState.APPROVED, payment_id=payment_id, order_number=data["order"], amount=Decimal(15000), currency="KRW"
        )


# --- the pipeline -----------------------------------------------------------------------------


@responses.activate
def test_call_sends_the_exact_request_with_the_token_and_key():
    responses.post(f"{BASE}/token", json={"token": "t1"})
    responses.post(
        f"{BASE}/pay",
        json={"ok": True},
        match=[
            matchers.json_params_matcher({"amount": 15000}),
            matchers.header_matcher({"Authorization": "Bearer t1", "Idempotency-Key": "k1", "Content-Type": "application/json"}),
        ],
    )
    assert TinyGateway().call("confirm", "POST", "/pay", json_body={"amount": 15000}, idempotency_key="k1") == {"ok": True}


@responses.activate
def test_a_refused_token_is_renewed_once_and_the_call_sent_once_more():
    responses.post(f"{BASE}/token", json={"token": "t1"})
    responses.post(f"{BASE}/token", json={"token": "t2"})
    responses.get(
        f"{BASE}/payments/p", status=401, json={"code": "EXPIRED"}, match=[matchers.header_matcher({"Authorization": "Bearer t1"})]
    )
    responses.get(f"{BASE}/payments/p", json={"order": "ORDER-1"}, match=[matchers.header_matcher({"Authorization": "Bearer t2"})])
    gateway = TinyGateway()
    assert gateway.lookup(payment_id="p").order_number == "ORDER-1"
    assert gateway.fetched == 2 and len(responses.calls) == 4


@responses.activate
def test_a_token_that_cannot_be_fetched_means_nothing_was_sent():
    responses.post(f"{BASE}/token", body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(GatewayUnavailable) as caught:
        TinyGateway().call("cancel", "POST", "/cancel", json_body={})
    assert caught.value.code == "TOKEN_UNAVAILABLE" and not caught.value.outcome_unknown


@pytest.mark.parametrize("body", ["<html>proxy</html>", "[1, 2]", ""])
@responses.activate
def test_a_2xx_that_is_not_a_json_object_is_an_unknown_outcome(body):
    responses.post(f"{BASE}/token", json={"token": "t1"})
    responses.post(f"{BASE}/cancel", body=body, status=200)
    with pytest.raises(GatewayUnavailable) as caught:
        TinyGateway().call("cancel", "POST", "/cancel", json_body={})
    assert caught.value.code == "MALFORMED_REPLY" and caught.value.outcome_unknown
    assert len(responses.calls) == 2  # no blind retry of the POST


@responses.activate
def test_a_lost_answer_to_a_post_is_never_sent_again():
    responses.post(f"{BASE}/token", json={"token": "t1"})
    responses.post(f"{BASE}/cancel", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(GatewayUnavailable) as caught:
        TinyGateway().call("cancel", "POST", "/cancel", json_body={})
    assert caught.value.outcome_unknown and len(responses.calls) == 2


@responses.activate
def test_the_default_confirm_is_a_lookup_and_an_order_check():
    responses.post(f"{BASE}/token", json={"token": "t1"})
    responses.get(f"{BASE}/payments/p", json={"order": "ORDER-1"})
    responses.get(f"{BASE}/payments/q", json={"order": "SOMEONE-ELSE"})
    gateway = TinyGateway()
    request = ConfirmRequest(order=ORDER, payment_id="p", amount=Decimal(15000), currency="KRW", idempotency_key="k")
    assert gateway.confirm(request).payment_id == "p"
    with pytest.raises(InvalidRequest) as caught:
        gateway.confirm(ConfirmRequest(order=ORDER, payment_id="q", amount=Decimal(15000), currency="KRW", idempotency_key="k"))
    assert caught.value.code == "PAYMENT_ORDER_MISMATCH"


def test_a_pg_with_a_confirm_call_has_no_default_confirm():
    gateway = TinyGateway()
    gateway.requires_confirm_call = True
    with pytest.raises(UnsupportedFeature):
        gateway.confirm(ConfirmRequest(order=ORDER, payment_id="p", amount=Decimal(1), currency="KRW", idempotency_key="k"))


# --- one error mapper, consistent across PGs ------------------------------------------------------


def reply(status, data):
    return HttpReply(status=status, headers={}, data=data, text="")


GATEWAYS = {
    "toss": lambda: TossGateway("toss", {"SECRET_KEY": "test_sk_x", "CLIENT_KEY": "test_ck_x"}),
    "bootpay": lambda: BootpayGateway("bootpay", {"CLIENT_KEY": "c", "SECRET_KEY": "s"}),
    "portone-v2": lambda: PortOneV2Gateway("portone-v2", {"API_SECRET": "s", "STORE_ID": "store-1", "CHANNEL_KEY": "ch"}),
    "stripe": lambda: StripeGateway("stripe", {"SECRET_KEY": "sk_test_x"}),
}
ERROR_BODIES = {
    "toss": lambda code: {"code": code, "message": "m"},
    "bootpay": lambda code: {"error_code": code, "message": "m"},
    "portone-v2": lambda code: {"type": code, "message": "m"},
    "stripe": lambda code: {"error": {"type": "invalid_request_error", "code": code, "message": "m"}},
}


@pytest.mark.parametrize("pg", sorted(GATEWAYS))
@pytest.mark.parametrize("verb", ["confirm", "cancel", "lookup"])
def test_409_with_a_code_the_pg_does_not_list_is_in_progress_everywhere(pg, verb):
    """Issue 16: PortOne V2 answered 409 with a refusal where Toss, Bootpay and Stripe said "unknown"."""
    error = GATEWAYS[pg]().error(reply(409, ERROR_BODIES[pg]("SOMETHING_NEW")), verb)
    assert type(error) is GatewayUnavailable and error.outcome_unknown


@pytest.mark.parametrize("pg", sorted(GATEWAYS))
def test_an_unlisted_4xx_refuses_a_cancel_and_is_invalid_elsewhere(pg):
    """Issue 16: a cancel Toss refused with an unlisted 400 was InvalidRequest, Bootpay's CancelRefused: now one rule."""
    gateway, body = GATEWAYS[pg](), ERROR_BODIES[pg]("SOMETHING_NEW")
    assert type(gateway.error(reply(400, body), "cancel" if pg != "stripe" else "refund")) is CancelRefused
    assert type(gateway.error(reply(400, body), "lookup")) is InvalidRequest


def test_403_means_what_each_pg_documents():
    """Toss answers its refusals with 403 (declines, refused cancels); elsewhere 403 is our credentials."""
    toss = GATEWAYS["toss"]()
    assert type(toss.error(reply(403, ERROR_BODIES["toss"]("SOMETHING_NEW")), "confirm")) is PaymentDeclined
    assert type(toss.error(reply(403, ERROR_BODIES["toss"]("SOMETHING_NEW")), "cancel")) is CancelRefused
    for pg in ("bootpay", "portone-v2", "stripe"):
        assert type(GATEWAYS[pg]().error(reply(403, ERROR_BODIES[pg]("SOMETHING_NEW")), "confirm")) is AuthenticationFailed


@pytest.mark.parametrize("pg", sorted(GATEWAYS))
def test_a_body_that_is_not_the_pgs_error_shape_is_unknown(pg):
    error = GATEWAYS[pg]().error(HttpReply(status=400, headers={}, data=None, text="<html>proxy</html>"), "cancel")
    assert type(error) is GatewayUnavailable and error.outcome_unknown and error.response == {"body": "<html>proxy</html>"}


def test_a_decline_is_never_the_answer_to_a_cancel_and_already_cancelled_only_to_one():
    toss = GATEWAYS["toss"]()
    assert type(toss.error(reply(403, {"code": "REJECT_CARD_COMPANY", "message": "m"}), "cancel")) is CancelRefused
    assert type(toss.error(reply(400, {"code": "ALREADY_CANCELED_PAYMENT", "message": "m"}), "confirm")) is InvalidRequest


# --- one webhook primitive ----------------------------------------------------------------------


def test_parse_webhook_delegates_to_parse_received_webhook_for_every_gateway():
    for cls in (TossGateway, BootpayGateway, PortOneV1Gateway, PortOneV2Gateway, StripeGateway, FakeGateway):
        assert cls.parse_webhook is BaseGateway.parse_webhook, cls
        assert cls.parse_received_webhook is not BaseGateway.parse_received_webhook, cls


def test_portone_v2_checks_the_signature_as_of_when_the_delivery_arrived():
    from tests.portone_support import WEBHOOK_SECRET
    from tests.test_portone_v2_gateway import delivery

    gateway = PortOneV2Gateway(
        "portone-v2", {"API_SECRET": "s", "STORE_ID": "store-1", "CHANNEL_KEY": "c", "WEBHOOK_SECRETS": WEBHOOK_SECRET}
    )
    headers, body = delivery(stamp=1_700_000_000)
    arrived = dt.datetime.fromtimestamp(1_700_000_010, tz=dt.timezone.utc)
    assert gateway.parse_received_webhook(headers, body, received_at=arrived).verified
    with pytest.raises(Exception, match="(?i)old|stale|timestamp"):
        gateway.parse_webhook(headers, body)  # received now: far too late


def test_a_gateway_written_before_the_primitive_still_parses_with_a_warning():
    class Legacy(BaseGateway):
        def parse_webhook(self, headers, body):
            return ParsedWebhook(event_id="e1", event_type="X")

    with pytest.warns(PgPayDeprecationWarning, match="parse_received_webhook"):
        assert Legacy("legacy", {}).parse_received_webhook({}, b"", received_at=dt.datetime.now(dt.timezone.utc)).event_id == "e1"


def test_the_old_name_of_the_parsed_webhook_is_a_deprecated_alias():
    from django_pgpay.gateways import results

    with pytest.warns(PgPayDeprecationWarning, match="ParsedWebhook"):
        assert results.WebhookEvent is ParsedWebhook


# --- capabilities of the configured gateway ---------------------------------------------------------


def test_fake_capabilities_follow_its_options():
    assert FakeGateway("fake", {})._options == {} and FakeGateway("fake", {}).capabilities()["supports_partial_cancel"] is True
    assert FakeGateway("fake", {"PARTIAL_CANCEL": False}).capabilities()["supports_partial_cancel"] is False


# --- one spelling per option ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, old, new, value",
    [
        (
            lambda o: TossGateway("toss", {"SECRET_KEY": "test_sk_x", "CLIENT_KEY": "test_ck_x", **o}),
            "METHOD",
            "PAY_METHOD",
            "VIRTUAL_ACCOUNT",
        ),
        (lambda o: BootpayGateway("bootpay", {"CLIENT_KEY": "c", "SECRET_KEY": "s", **o}), "METHOD", "PAY_METHOD", "card"),
        (
            lambda o: PortOneV2Gateway("v2", {"API_SECRET": "s", "STORE_ID": "store-1", "CHANNEL_KEY": "c", **o}),
            "WEBHOOK_SECRET",
            "WEBHOOK_SECRETS",
            "whsec_c2VjcmV0",
        ),
    ],
)
def test_an_old_option_name_still_works_and_a_check_names_the_new_one(make, old, new, value):
    gateway = make({old: value})
    assert gateway.option(new) == value
    renamed = [m for m in gateway.check(debug=True) if m.id == "django_pgpay.W010"]
    assert len(renamed) == 1 and repr(new) in renamed[0].msg and repr(old) in renamed[0].msg
    assert not [m for m in make({new: value}).check(debug=True) if m.id == "django_pgpay.W010"]


def test_the_new_spelling_wins_over_the_old():
    gateway = TossGateway("toss", {"SECRET_KEY": "test_sk_x", "CLIENT_KEY": "test_ck_x", "METHOD": "CARD", "PAY_METHOD": "TRANSFER"})
    assert gateway.option("PAY_METHOD") == "TRANSFER"


# --- typed contracts ------------------------------------------------------------------------------------


def test_a_refund_account_needs_bank_number_and_holder_and_hides_its_number():
    account = RefundAccount(bank="088", number="110123456789", holder="박토스", phone="01012345678")
    assert "110123456789" not in repr(account) and "01012345678" not in repr(account)
    with pytest.raises(ValueError):
        RefundAccount(bank="088", number="", holder="x")


@pytest.mark.parametrize(
    "pg_data, expected",
    [
        (
            {"refund_receive_account": {"bank": "88", "accountNumber": "1101", "holderName": "박토스", "tel": "010"}},
            RefundAccount(bank="88", number="1101", holder="박토스", phone="010"),
        ),
        (
            {"bootpay_refund": {"bank_account": "1101", "bank_username": "박부트", "bank_code": "088"}},
            RefundAccount("088", "1101", "박부트"),
        ),
        ({"refund_receive_account": {"bank": "88"}}, None),
    ],
)
def test_the_old_pg_data_conventions_are_read_with_a_deprecation_warning(pg_data, expected):
    with pytest.warns(PgPayDeprecationWarning, match="refund_account=RefundAccount"):
        assert RefundAccount.from_pg_data(pg_data) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RefundAccount.from_pg_data({}) is None


def test_a_virtual_account_joins_pg_data_in_one_format_and_gives_the_deadline():
    due = dt.datetime(2024, 6, 18, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    result = PaymentResult(
        state=PaymentState.WAITING_FOR_DEPOSIT,
        payment_id="p",
        order_number="o",
        amount=Decimal(1),
        currency="KRW",
        virtual_account=VirtualAccount(bank="088", number="5621", holder="한우집", due=due),
    )
    assert result.expires_at == due
    assert result.pg_data == {
        "vbank_account_number": "5621",
        "vbank_bank_code": "088",
        "vbank_holder": "한우집",
        "vbank_due_date": "2024-06-18T23:59:59+09:00",
    }
    with pytest.raises(ValueError):
        VirtualAccount(bank="088", number="1", due=dt.datetime(2024, 6, 18))


# --- payments.cancel(..., refund_account=...) ---------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch):
    captured: list[CancelRequest] = []
    original = FakeGateway.cancel

    def spy(self, request):
        captured.append(request)
        return original(self, request)

    monkeypatch.setattr(FakeGateway, "cancel", spy)
    return captured


def test_cancel_carries_the_refund_account_to_the_gateway(paid_booking, pg, sent):
    account = RefundAccount(bank="088", number="110123456789", holder="박토스")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        payments.cancel(paid_booking, Decimal(5000), reason="환불", refund_account=account)
    assert sent[-1].refund_account == account


def test_cancel_reads_the_old_pg_data_convention_with_a_warning(paid_booking, pg, sent):
    paid_booking.pg_data = {
        **paid_booking.pg_data,
        "refund_receive_account": {"bank": "88", "accountNumber": "1101", "holderName": "박토스"},
    }
    paid_booking.save(update_fields=["pg_data"])
    with pytest.warns(PgPayDeprecationWarning, match="refund_receive_account"):
        payments.cancel(paid_booking, Decimal(5000), reason="환불")
    assert sent[-1].refund_account == RefundAccount(bank="88", number="1101", holder="박토스")


def test_cancel_refuses_a_refund_account_of_another_type(paid_booking, pg):
    with pytest.raises(TypeError):
        payments.cancel(paid_booking, Decimal(5000), reason="환불", refund_account={"bank": "88"})
