"""Issue 16's Stripe wire gaps, each checked with the official ``stripe`` library over a real socket.

1. a Checkout Session below Stripe's minimum charge is refused (``amount_too_small``);
2. lists honour ``created[…]`` and Stripe's own filters, and an unknown GET parameter is a 400 ``parameter_unknown``;
3. objects have the shape of the API version announced, and a missing object named by a POST parameter is a 400
   naming that parameter.
"""

import pytest
import stripe

from django_pgpay.sandbox import control
from django_pgpay.sandbox import stripe as emulated

from .conftest import AVAILABLE_APPS
from .stripe_helpers import SECRET_KEY

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


@pytest.fixture
def client(sandbox_url):
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": sandbox_url + "/stripe"}, max_network_retries=0)


def create_session(client, order_id, amount=15000, currency="krw", **extra):
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "client_reference_id": order_id,
            "line_items": [{"price_data": {"currency": currency, "product_data": {"name": "책"}, "unit_amount": amount}, "quantity": 1}],
            "success_url": "https://shop.example/pay/stripe/return/?session_id={CHECKOUT_SESSION_ID}",
            "payment_intent_data": {"metadata": {"order_id": order_id}},
            **extra,
        }
    )


def refused(call, *args, **kwargs) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_a_total_below_the_minimum_charge_is_amount_too_small(client):
    one_won = refused(create_session, client, "order-1won", amount=1)
    assert (one_won.http_status, one_won.code, one_won.param) == (400, "amount_too_small", "line_items")
    assert one_won.json_body["error"]["type"] == "invalid_request_error" and "₩700" in one_won.user_message
    assert create_session(client, "order-700won", amount=700).amount_total == 700
    assert refused(create_session, client, "order-49c", amount=49, currency="usd").code == "amount_too_small"
    assert create_session(client, "order-50c", amount=50, currency="usd").amount_total == 50
    assert refused(create_session, client, "order-49y", amount=49, currency="jpy").code == "amount_too_small"
    # Nothing was made of the refusals.
    assert {s.client_reference_id for s in client.v1.checkout.sessions.list().data} == {"order-700won", "order-50c"}


def test_lists_honour_created_and_stripes_filters(client):
    early = create_session(client, "order-early", customer_email="early@example.com")
    emulated.pay(early.id)
    control.advance_clock(minutes=10)
    late = create_session(client, "order-late")
    emulated.pay(late.id, email="Late@Example.com")
    open_one = create_session(client, "order-open")
    cut = late.created

    def ids(listing):
        return [o.id for o in listing.data]

    sessions = client.v1.checkout.sessions
    assert ids(sessions.list(params={"created": {"gte": cut}})) == [open_one.id, late.id]
    assert ids(sessions.list(params={"created": {"lt": cut}})) == [early.id]
    # The real clock may tick between the late and the open session: bound by the open one's own second.
    assert ids(sessions.list(params={"created": {"gt": early.created, "lte": open_one.created}})) == [open_one.id, late.id]
    assert ids(sessions.list(params={"created": {"gt": early.created, "lte": cut}}))[-1] == late.id
    assert ids(sessions.list(params={"created": early.created})) == [early.id]
    assert ids(sessions.list(params={"customer_details": {"email": "late@example.com"}})) == [late.id]
    assert ids(sessions.list(params={"status": "open"})) == [open_one.id]
    # No customers or Payment Links in the sandbox: such filters find nothing, as at Stripe for an unknown id.
    assert ids(sessions.list(params={"customer": "cus_nobody"})) == []
    assert ids(sessions.list(params={"payment_link": "plink_nothing"})) == []

    early_intent = emulated.session_state(early.id)["payment_intent"]
    late_intent = emulated.session_state(late.id)["payment_intent"]
    first = client.v1.refunds.create(params={"payment_intent": early_intent, "amount": 1000})
    control.advance_clock(minutes=10)
    second = client.v1.refunds.create(params={"payment_intent": late_intent, "amount": 1000})
    assert ids(client.v1.refunds.list(params={"created": {"gt": first.created}})) == [second.id]
    assert ids(client.v1.refunds.list(params={"created": {"lte": first.created}})) == [first.id]
    newest = client.v1.events.list(params={"created": {"gte": second.created}})
    assert {e.type for e in newest.data} == {"refund.created", "charge.refunded"}


@pytest.mark.parametrize(
    "call, param",
    [
        (lambda c: c.v1.checkout.sessions.list(params={"colour": "blue"}), "colour"),
        (lambda c: c.v1.checkout.sessions.list(params={"created": {"between": 1}}), "created[between]"),
        (lambda c: c.v1.checkout.sessions.list(params={"customer_details": {"phone": "010"}}), "customer_details[phone]"),
        (lambda c: c.v1.refunds.list(params={"customer": "cus_1"}), "customer"),
        (lambda c: c.v1.events.list(params={"payment_intent": "pi_1"}), "payment_intent"),
        (lambda c: c.v1.payment_intents.search(params={"query": "status:'succeeded'", "sort": "created"}), "sort"),
        (lambda c: c.v1.checkout.sessions.retrieve("cs_test_nothing", params={"colour": "blue"}), "colour"),
    ],
)
def test_an_unknown_get_parameter_is_parameter_unknown(client, call, param):
    error = refused(call, client)
    assert error.http_status == 400
    assert error.json_body["error"] == {
        "code": "parameter_unknown",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
        "message": f"Received unknown parameter: {param}",
        "param": param,
        "type": "invalid_request_error",
    }


def test_objects_have_the_shape_of_the_announced_api_version(client):
    session = create_session(client, "order-basil")
    assert session.last_response.headers["Stripe-Version"] == stripe.api_version == emulated.API_VERSION
    raw = session.last_response.data
    # 2025-03-31.basil: shipping_details moved to collected_information.shipping_details.
    assert "shipping_details" not in raw and raw["collected_information"] is None
    assert raw["presentment_details"] == {"presentment_amount": 15000, "presentment_currency": "krw"}
    emulated.pay(session.id)
    paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert paid.collected_information.shipping_details is None
    assert paid.last_response.data["collected_information"] == {"business_name": None, "individual_name": None, "shipping_details": None}
    intent = paid.payment_intent
    # 2025-03-31.basil: a PaymentIntent no longer has invoice.
    assert "invoice" not in intent and "invoice" not in paid.last_response.data["payment_intent"]
    assert intent.presentment_details.presentment_amount == 15000 and intent.presentment_details.presentment_currency == "krw"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.retrieve(intent.id, params={"expand": ["invoice"]})
    assert {e["api_version"] for e in emulated.events()} == {stripe.api_version}


@pytest.mark.parametrize(
    "params, param, kind",
    [
        ({"payment_intent": "pi_nothing"}, "payment_intent", "payment_intent"),
        ({"charge": "ch_nothing"}, "charge", "charge"),
    ],
)
def test_a_missing_object_named_by_a_post_parameter_is_400_naming_it(client, params, param, kind):
    error = refused(client.v1.refunds.create, params=params)
    assert (error.http_status, error.code, error.param) == (400, "resource_missing", param)
    assert error.json_body["error"]["type"] == "invalid_request_error"
    assert error.user_message == f"No such {kind}: '{params[param]}'"


def test_a_missing_price_in_line_items_is_400_naming_it(client):
    error = refused(
        client.v1.checkout.sessions.create,
        params={"mode": "payment", "success_url": "https://shop.example/ok", "line_items": [{"price": "price_nothing", "quantity": 1}]},
    )
    assert (error.http_status, error.code, error.param) == (400, "resource_missing", "line_items[0][price]")
    # A missing object named in the URL stays a 404.
    assert refused(client.v1.checkout.sessions.retrieve, "cs_test_nothing").http_status == 404
