"""The emulated Stripe API over a real socket, seen by a client written from stripe.md (not by our gateway)."""

import re
import threading
import time

import pytest
import requests

from django_pgpay.sandbox import control
from django_pgpay.sandbox import stripe as emulated
from django_pgpay.sandbox.models import SandboxPayment

from .conftest import AVAILABLE_APPS
from .stripe_helpers import SECRET_KEY, stripe_api, stripe_paid  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)

REQUEST_ID = re.compile(r"^req_[A-Za-z0-9]{14}$")


def error_of(response, status):
    assert response.status_code == status, response.text
    assert REQUEST_ID.match(response.headers["Request-Id"])
    return response.json()["error"]


# --- authentication ---------------------------------------------------------------------------------


def test_no_key_wrong_key_and_basic_auth(stripe_api):
    missing = error_of(stripe_api.request("GET", "/v1/checkout/sessions", key=""), 401)
    assert missing["type"] == "invalid_request_error" and "did not provide an API key" in missing["message"]
    wrong = error_of(stripe_api.request("GET", "/v1/checkout/sessions", key="sk_test_someoneElsesKey00000000"), 401)
    assert wrong["message"] == "Invalid API Key provided: sk_test_************0000"
    assert SECRET_KEY not in wrong["message"]
    # curl -u sk_test_...: sends Basic auth with the key as user name; Stripe takes it.
    basic = requests.get(stripe_api.base_url + "/v1/checkout/sessions", auth=(SECRET_KEY, ""), timeout=10)
    assert basic.status_code == 200 and basic.json()["object"] == "list"


# --- Checkout Sessions ------------------------------------------------------------------------------


def test_create_a_checkout_session(stripe_api, sandbox_url):
    response = stripe_api.create_session(
        "order-0001",
        lines=[("한우 오마카세", 15000, 1), ("와인", 2500, 2)],
        customer_email="buyer@example.com",
        locale="ko",
        expand=["line_items"],
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert REQUEST_ID.match(response.headers["Request-Id"])
    session = response.json()
    assert re.match(r"^cs_test_[A-Za-z0-9]{50,}$", session["id"])
    assert session["url"] == f"{sandbox_url}/stripe/c/pay/{session['id']}"
    assert {k: session[k] for k in ("object", "mode", "status", "payment_status", "amount_subtotal", "amount_total", "currency")} == {
        "object": "checkout.session",
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "amount_subtotal": 20000,
        "amount_total": 20000,
        "currency": "krw",
    }
    assert session["client_reference_id"] == "order-0001"
    assert session["metadata"] == {"order_id": "order-0001"}
    assert session["payment_intent"] is None  # made when the buyer pays
    assert session["success_url"].endswith("session_id={CHECKOUT_SESSION_ID}")
    assert session["customer_email"] == "buyer@example.com" and session["locale"] == "ko" and session["livemode"] is False
    assert session["expires_at"] - session["created"] == 24 * 3600
    lines = session["line_items"]
    assert lines["object"] == "list" and [(i["description"], i["quantity"], i["amount_total"]) for i in lines["data"]] == [
        ("한우 오마카세", 1, 15000),
        ("와인", 2, 5000),
    ]
    # Unexpanded on retrieval; line items have their own endpoint too.
    again = stripe_api.session(session["id"]).json()
    assert "line_items" not in again and again["amount_total"] == 20000
    items = stripe_api.request("GET", f"/v1/checkout/sessions/{session['id']}/line_items", {"limit": 1}).json()
    assert items["has_more"] is True and items["data"][0]["price"]["unit_amount"] == 15000


@pytest.mark.parametrize(
    "change, status, code, param",
    [
        ({"mode": None}, 400, "parameter_missing", "mode"),
        ({"colour": "blue"}, 400, "parameter_unknown", "colour"),
        (
            {"line_items": [{"price_data": {"currency": "krw", "product_data": {"name": "x"}, "unit_amount": "10.5"}, "quantity": 1}]},
            400,
            "parameter_invalid_integer",
            "line_items[0][price_data][unit_amount]",
        ),
        (
            {
                "line_items": [
                    {"price_data": {"currency": "krw", "product_data": {"name": "x"}, "unit_amount": 100, "colour": "x"}, "quantity": 1}
                ]
            },
            400,
            "parameter_unknown",
            "line_items[0][price_data][colour]",
        ),
        # A missing object named by a POST parameter: 400 naming the parameter (as at Stripe), not 404.
        ({"line_items": [{"price": "price_123", "quantity": 1}]}, 400, "resource_missing", "line_items[0][price]"),
        (
            {"line_items": [{"price_data": {"currency": "krw", "product_data": {"name": "x"}, "unit_amount": 100}}]},
            400,
            "parameter_missing",
            "line_items[0][quantity]",
        ),
        ({"success_url": "not a url"}, 400, "url_invalid", "success_url"),
        ({"customer_email": "nobody"}, 400, "email_invalid", "customer_email"),
        ({"metadata": {"k" * 41: "v"}}, 400, None, "metadata[" + "k" * 41 + "]"),
    ],
)
def test_bad_parameters(stripe_api, change, status, code, param):
    params = emulated_params()
    for name, value in change.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    error = error_of(stripe_api.request("POST", "/v1/checkout/sessions", params), status)
    assert error.get("code") == code and error["param"] == param and error["type"] == "invalid_request_error"
    assert not SandboxPayment.objects.filter(key__startswith="cs_").exists()


def emulated_params():
    from .stripe_helpers import session_params

    return session_params("order-bad")


def test_amount_rules(stripe_api):
    # expires_at between 30 minutes and 24 hours from now.
    soon = int(time.time()) + 20 * 60
    assert "30 minutes and 24 hours" in error_of(stripe_api.create_session(expires_at=soon), 400)["message"]
    assert stripe_api.create_session(expires_at=int(time.time()) + 31 * 60).status_code == 200
    # Stripe's minimum charge (USD $0.50).
    small = error_of(stripe_api.create_session(amount=49, currency="usd"), 400)
    assert small["code"] == "amount_too_small" and "$0.50" in small["message"]
    # Three-decimal currencies: the last digit must be 0.
    assert error_of(stripe_api.create_session(amount=1235, currency="kwd"), 400)["param"] == "line_items[0][price_data][unit_amount]"
    assert stripe_api.create_session(amount=1230, currency="kwd").json()["amount_total"] == 1230
    # One currency per Session; no subscriptions.
    mixed = stripe_api.create_session(
        lines=[("a", 100, 1)],
        line_items=[
            {"price_data": {"currency": "krw", "product_data": {"name": "a"}, "unit_amount": 100}, "quantity": 1},
            {"price_data": {"currency": "usd", "product_data": {"name": "b"}, "unit_amount": 100}, "quantity": 1},
        ],
    )
    assert error_of(mixed, 400)["param"] == "line_items[1][price_data][currency]"
    assert "mode=subscription" in error_of(stripe_api.create_session(mode="subscription"), 400)["message"]


def test_retrieve_with_expand_after_payment(stripe_api, stripe_paid):
    session, outcome = stripe_paid(order_id="order-expand")
    assert outcome["outcome"] == "paid"
    plain = stripe_api.session(session["id"]).json()
    assert (plain["status"], plain["payment_status"]) == ("complete", "paid")
    assert plain["payment_intent"].startswith("pi_") and plain["url"] is None
    assert plain["customer_details"]["email"] == "buyer@example.com"
    # The official SDK's indexed lists and the older expand[] both work.
    for query in ({"expand": ["payment_intent", "payment_intent.latest_charge"]}, None):
        if query is None:
            url = (
                stripe_api.base_url + f"/v1/checkout/sessions/{session['id']}?expand[]=payment_intent&expand[]=payment_intent.latest_charge"
            )
            response = stripe_api.http.get(url, headers={"Authorization": f"Bearer {SECRET_KEY}"}, timeout=10)
        else:
            response = stripe_api.session(session["id"], expand=query["expand"])
        intent = response.json()["payment_intent"]
        charge = intent["latest_charge"]
        assert (intent["object"], intent["status"], intent["amount"], intent["currency"]) == ("payment_intent", "succeeded", 15000, "krw")
        assert intent["metadata"] == {"order_id": "order-expand"} and intent["id"] == plain["payment_intent"]
        assert (charge["object"], charge["amount"], charge["amount_refunded"], charge["refunded"], charge["paid"]) == (
            "charge",
            15000,
            0,
            False,
            True,
        )
        assert charge["payment_intent"] == intent["id"] and charge["metadata"] == {"order_id": "order-expand"}
        assert charge["payment_method_details"]["type"] == "card" and charge["payment_method_details"]["card"]["last4"] == "4242"
        assert charge["receipt_url"].endswith(f"/sandbox/stripe/receipts/{charge['id']}")
    assert error_of(stripe_api.session(session["id"], expand=["colour"]), 400)["message"] == "This property cannot be expanded (colour)."


def test_unknown_ids_and_urls(stripe_api):
    missing = error_of(stripe_api.session("cs_test_nothing"), 404)
    assert (missing["code"], missing["message"], missing["param"]) == (
        "resource_missing",
        "No such checkout.session: 'cs_test_nothing'",
        "session",
    )
    assert error_of(stripe_api.intent("pi_nothing"), 404)["message"] == "No such payment_intent: 'pi_nothing'"
    assert error_of(stripe_api.request("GET", "/v1/customers"), 404)["message"].startswith("Unrecognized request URL (GET: /v1/customers)")
    assert error_of(stripe_api.request("DELETE", "/v1/refunds"), 404)["message"].startswith(
        "Unrecognized request URL (DELETE: /v1/refunds)"
    )


def test_expire_an_open_session(stripe_api):
    session = stripe_api.create_session("order-expire").json()
    expired = stripe_api.expire(session["id"])
    assert expired.status_code == 200 and (expired.json()["status"], expired.json()["url"]) == ("expired", None)
    again = error_of(stripe_api.expire(session["id"]), 400)
    assert again["message"] == 'Only Checkout Sessions with a status in ["open"] can be expired.'
    assert [e["data"]["object"]["id"] for e in emulated.events("checkout.session.expired")] == [session["id"]]


def test_sessions_expire_on_the_sandbox_clock(stripe_api):
    session = stripe_api.create_session("order-clock", expires_at=int(time.time()) + 31 * 60).json()
    control.advance_clock(minutes=30)
    assert stripe_api.session(session["id"]).json()["status"] == "open"
    control.advance_clock(minutes=2)
    assert control.tick()["changed"] == 1  # the sweep, as the worker runs it
    assert stripe_api.session(session["id"]).json()["status"] == "expired"
    assert len(emulated.events("checkout.session.expired")) == 1
    with pytest.raises(Exception, match="not open"):
        emulated.pay(session["id"])


# --- PaymentIntents and search ----------------------------------------------------------------------


def test_payment_intent_and_search(stripe_api, stripe_paid):
    session, _ = stripe_paid(order_id="order-search-1")
    stripe_paid(order_id="order-search-2", amount=30000)
    intent = stripe_api.intent(session["payment_intent"]).json()
    assert intent["latest_charge"]["object"] == "charge" and intent["last_payment_error"] is None
    assert set(intent) >= {"id", "amount", "currency", "status", "metadata", "latest_charge", "created", "cancellation_reason"}
    found = stripe_api.search("metadata['order_id']:'order-search-1'", limit=20, expand=["data.latest_charge"]).json()
    assert (found["object"], found["has_more"], found["next_page"]) == ("search_result", False, None)
    assert [i["id"] for i in found["data"]] == [session["payment_intent"]]
    assert found["data"][0]["latest_charge"]["amount"] == 15000
    assert stripe_api.search("metadata['order_id']:'order-none'").json()["data"] == []
    both = stripe_api.search("metadata['order_id']:'order-search-1' OR amount>20000", limit=1).json()
    assert both["has_more"] is True and both["data"][0]["amount"] == 30000
    rest = stripe_api.search("metadata['order_id']:'order-search-1' OR amount>20000", limit=1, page=both["next_page"]).json()
    assert [i["amount"] for i in rest["data"]] == [15000] and rest["has_more"] is False
    assert error_of(stripe_api.search("order_id = 1"), 400)["param"] == "query"


def test_search_lag(stripe_api, stripe_paid, settings):
    settings.PGPAY_SANDBOX = {**settings.PGPAY_SANDBOX, "STRIPE": {**settings.PGPAY_SANDBOX["STRIPE"], "SEARCH_LAG": 60}}
    stripe_paid(order_id="order-lag")
    assert stripe_api.search("metadata['order_id']:'order-lag'").json()["data"] == []
    control.advance_clock(seconds=61)
    assert len(stripe_api.search("metadata['order_id']:'order-lag'").json()["data"]) == 1


# --- refunds -------------------------------------------------------------------------------------------


def test_partial_and_full_refunds(stripe_api, stripe_paid):
    session, _ = stripe_paid(amount=20000)
    intent_id = session["payment_intent"]
    first = stripe_api.refund(intent_id, 5000, metadata={"idempotency_key": "k-1", "order_id": "order-0001", "reason": "고객 요청"})
    assert first.status_code == 200, first.text
    refund = first.json()
    assert re.match(r"^re_", refund["id"]) and (refund["object"], refund["amount"], refund["currency"], refund["status"]) == (
        "refund",
        5000,
        "krw",
        "succeeded",
    )
    assert refund["payment_intent"] == intent_id and refund["charge"].startswith("ch_")
    assert refund["metadata"] == {"idempotency_key": "k-1", "order_id": "order-0001", "reason": "고객 요청"}
    charge = stripe_api.intent(intent_id).json()["latest_charge"]
    assert (charge["amount_refunded"], charge["refunded"]) == (5000, False)
    too_much = error_of(stripe_api.refund(intent_id, 15001), 400)
    assert too_much["code"] == "amount_too_large"
    assert too_much["message"] == "Refund amount (₩15,001) is greater than unrefunded amount on charge (₩15,000)"
    rest = stripe_api.refund(intent_id).json()  # no amount: what is left
    assert rest["amount"] == 15000
    charge = stripe_api.intent(intent_id).json()["latest_charge"]
    assert (charge["amount_refunded"], charge["refunded"]) == (20000, True)
    assert error_of(stripe_api.refund(intent_id, 1), 400)["code"] == "charge_already_refunded"
    listed = stripe_api.refunds(intent_id, limit=100).json()
    assert listed["object"] == "list" and [r["id"] for r in listed["data"]] == [rest["id"], refund["id"]]  # newest first


def test_refund_refusals(stripe_api, stripe_paid):
    unpaid = stripe_api.create_session("order-unpaid").json()
    emulated.pay(unpaid["id"], card="4000000000000002")  # declined: the PaymentIntent has no successful charge
    intent_id = emulated.session_state(unpaid["id"])["payment_intent"]
    assert error_of(stripe_api.refund(intent_id, 100), 400)["code"] == "charge_not_refundable"
    missing = error_of(stripe_api.refund("pi_nothing", 100), 400)  # named by a POST parameter: 400, param = that parameter
    assert (missing["code"], missing["param"], missing["type"]) == ("resource_missing", "payment_intent", "invalid_request_error")
    session, _ = stripe_paid()
    assert error_of(stripe_api.refund(session["payment_intent"], "10.5"), 400)["code"] == "parameter_invalid_integer"
    assert error_of(stripe_api.refund(session["payment_intent"], 100, reason="bored"), 400)["param"] == "reason"
    assert error_of(stripe_api.request("POST", "/v1/refunds", {"amount": 100}), 400)["code"] == "parameter_missing"


def test_refund_list_pages(stripe_api, stripe_paid):
    session, _ = stripe_paid(amount=30000)
    ids = [stripe_api.refund(session["payment_intent"], 1000).json()["id"] for _ in range(3)]
    page = stripe_api.refunds(session["payment_intent"], limit=2).json()
    assert page["has_more"] is True and [r["id"] for r in page["data"]] == ids[::-1][:2]
    rest = stripe_api.refunds(session["payment_intent"], limit=2, starting_after=page["data"][-1]["id"]).json()
    assert rest["has_more"] is False and [r["id"] for r in rest["data"]] == [ids[0]]


# --- idempotency --------------------------------------------------------------------------------------


def test_idempotent_replay_and_mismatch(stripe_api, stripe_paid):
    session, _ = stripe_paid()
    intent_id = session["payment_intent"]
    first = stripe_api.refund(intent_id, 5000, idempotency_key="refund-1")
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    assert first.headers["Idempotency-Key"] == "refund-1"
    replay = stripe_api.refund(intent_id, 5000, idempotency_key="refund-1")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.text == first.text  # the first answer, byte for byte
    assert stripe_api.intent(intent_id).json()["latest_charge"]["amount_refunded"] == 5000  # refunded once
    other = error_of(stripe_api.refund(intent_id, 4000, idempotency_key="refund-1"), 400)
    assert other["type"] == "idempotency_error" and "same parameters" in other["message"] and "'refund-1'" in other["message"]
    elsewhere = error_of(stripe_api.create_session("order-x", idempotency_key="refund-1"), 400)
    assert elsewhere["type"] == "idempotency_error" and "same endpoint" in elsewhere["message"]
    too_long = error_of(stripe_api.refund(intent_id, 100, idempotency_key="k" * 256), 400)
    assert "255" in too_long["message"]
    # GETs ignore the header.
    assert stripe_api.request("GET", f"/v1/payment_intents/{intent_id}", idempotency_key="refund-1").status_code == 200


def test_refusals_of_bad_parameters_are_not_kept(stripe_api):
    bad = stripe_api.request("POST", "/v1/checkout/sessions", {"client_reference_id": "order-1"}, idempotency_key="create-1")
    assert error_of(bad, 400)["code"] == "parameter_missing"
    good = stripe_api.create_session("order-1", idempotency_key="create-1")
    assert good.status_code == 200 and "Idempotent-Replayed" not in good.headers


def test_a_business_refusal_is_kept(stripe_api, stripe_paid):
    session, _ = stripe_paid()
    first = stripe_api.refund(session["payment_intent"], 99999, idempotency_key="big")
    assert error_of(first, 400)["code"] == "amount_too_large"
    replay = stripe_api.refund(session["payment_intent"], 99999, idempotency_key="big")
    assert replay.status_code == 400 and replay.headers["Idempotent-Replayed"] == "true"


def test_same_key_while_the_first_is_running(stripe_api, stripe_paid):
    session, _ = stripe_paid()
    control.arm_fault("stripe", "cancel", "timeout_before", delay=1.5)
    errors = []

    def first():
        try:
            stripe_api.refund(session["payment_intent"], 1000, idempotency_key="slow", timeout=5)
        except requests.RequestException as exc:  # pragma: no cover - only if the server is very slow
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.4)
    busy = stripe_api.refund(session["payment_intent"], 1000, idempotency_key="slow")
    error = error_of(busy, 409)
    assert error["code"] == "idempotency_key_in_use" and busy.headers["Stripe-Should-Retry"] == "true"
    thread.join()
    assert not errors
    # Nothing happened and nothing was kept: the retry runs.
    retry = stripe_api.refund(session["payment_intent"], 1000, idempotency_key="slow")
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry.headers


# --- faults ---------------------------------------------------------------------------------------------


def test_error_after_the_refund_keeps_the_real_answer_for_the_key(stripe_api, stripe_paid):
    session, _ = stripe_paid()
    control.arm_fault("stripe", "cancel", "error_after")
    lost = error_of(stripe_api.refund(session["payment_intent"], 5000, idempotency_key="lost"), 500)
    assert lost == {"message": "An unknown error occurred", "type": "api_error"}
    assert stripe_api.intent(session["payment_intent"]).json()["latest_charge"]["amount_refunded"] == 5000
    replay = stripe_api.refund(session["payment_intent"], 5000, idempotency_key="lost")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true" and replay.json()["amount"] == 5000


def test_error_before_creates_nothing(stripe_api):
    control.arm_fault("stripe", "checkout", "error_before", status=503)
    assert error_of(stripe_api.create_session("order-e", idempotency_key="c-1"), 503)["type"] == "api_error"
    assert not SandboxPayment.objects.filter(key__startswith="cs_").exists()
    assert stripe_api.create_session("order-e", idempotency_key="c-1").status_code == 200


def test_faults_in_stripes_own_words(stripe_api, stripe_paid):
    session, _ = stripe_paid()
    control.arm_fault("stripe", "lookup", "error_before", status=429, code="rate_limit")
    limited = error_of(stripe_api.session(session["id"]), 429)
    assert limited["code"] == "rate_limit"
    control.arm_fault("stripe", "cancel", "error_before", code="lock_timeout")
    locked = stripe_api.refund(session["payment_intent"], 100)
    assert error_of(locked, 400)["code"] == "lock_timeout" and locked.headers["Stripe-Should-Retry"] == "true"
    control.arm_fault("stripe", "lookup", "malformed_after", match=session["id"])
    broken = stripe_api.session(session["id"])
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()


def test_timeout_after_creating_a_session(stripe_api):
    control.arm_fault("stripe", "checkout", "timeout_after", delay=1.0)
    with pytest.raises(requests.Timeout):
        stripe_api.create_session("order-slow", idempotency_key="slow-create", timeout=0.3)
    time.sleep(0.9)
    replay = stripe_api.create_session("order-slow", idempotency_key="slow-create")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert SandboxPayment.objects.filter(key=replay.json()["id"]).exists()


# --- what the buyer and the bank do (no browser) -----------------------------------------------------------


def test_decline_then_pay_with_another_card(stripe_api):
    session = stripe_api.create_session("order-decline").json()
    declined = emulated.pay(session["id"], card="4000000000000002")
    assert (declined["outcome"], declined["message"]) == ("declined", "Your card was declined.")
    state = emulated.session_state(session["id"])
    assert (state["status"], state["payment_status"]) == ("open", "unpaid")
    intent = stripe_api.intent(state["payment_intent"]).json()
    assert intent["status"] == "requires_payment_method"
    assert (intent["last_payment_error"]["code"], intent["last_payment_error"]["decline_code"]) == ("card_declined", "generic_decline")
    assert (intent["latest_charge"]["status"], intent["latest_charge"]["paid"]) == ("failed", False)
    paid = emulated.pay(session["id"])
    assert paid["outcome"] == "paid" and paid["success_url"].endswith(f"session_id={session['id']}")
    intent = stripe_api.intent(state["payment_intent"]).json()  # the same PaymentIntent, a second Charge
    assert intent["status"] == "succeeded" and intent["latest_charge"]["status"] == "succeeded"
    assert [e["type"] for e in emulated.events()] == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


def test_three_d_secure(stripe_api):
    session = stripe_api.create_session("order-3ds").json()
    failed = emulated.pay(session["id"], card="4000002500003155", complete_3ds=False)
    assert failed["outcome"] == "declined"
    intent = emulated.payment_intent_state(session["id"])
    assert (intent["status"], intent["last_payment_error"]["code"]) == ("requires_payment_method", "payment_intent_authentication_failure")
    assert emulated.pay(session["id"], card="4000002500003155")["outcome"] == "paid"
    charge = stripe_api.intent(intent["id"]).json()["latest_charge"]
    assert charge["payment_method_details"]["card"]["three_d_secure"]["result"] == "authenticated"


def test_delayed_method_succeeds_later(stripe_api):
    session = stripe_api.create_session("order-debit", amount=3000, currency="usd").json()
    done = emulated.pay_delayed(session["id"])
    assert done["outcome"] == "processing"
    state = stripe_api.session(session["id"], expand=["payment_intent"]).json()
    assert (state["status"], state["payment_status"], state["payment_intent"]["status"]) == ("complete", "unpaid", "processing")
    assert error_of(stripe_api.refund(state["payment_intent"]["id"], 100), 400)["code"] == "charge_not_refundable"
    emulated.settle(session["id"])
    state = stripe_api.session(session["id"], expand=["payment_intent.latest_charge"]).json()
    assert (state["payment_status"], state["payment_intent"]["status"]) == ("paid", "succeeded")
    assert state["payment_intent"]["latest_charge"]["payment_method_details"]["type"] == "us_bank_account"
    assert [e["data"]["object"]["id"] for e in emulated.events("checkout.session.async_payment_succeeded")] == [session["id"]]


def test_delayed_method_fails_on_schedule(stripe_api):
    session = stripe_api.create_session("order-debit-2").json()
    emulated.pay_delayed(session["id"], outcome="fail:10")
    control.advance_clock(seconds=11)
    control.tick()
    intent = emulated.payment_intent_state(session["id"])
    assert intent["status"] == "requires_payment_method" and intent["last_payment_error"]["code"] == "payment_intent_payment_attempt_failed"
    assert emulated.session_state(session["id"])["payment_status"] == "unpaid"
    assert len(emulated.events("checkout.session.async_payment_failed")) == 1


def test_a_session_limited_to_cards_has_no_delayed_method(stripe_api):
    session = stripe_api.create_session("order-cards", payment_method_types=["card"]).json()
    assert session["payment_method_types"] == ["card"]
    assert emulated.pay_delayed(session["id"])["outcome"] == "invalid"


def test_events_api(stripe_api, stripe_paid):
    session, _ = stripe_paid()
    listed = stripe_api.request("GET", "/v1/events", {"type": "checkout.session.completed"}).json()
    assert [e["data"]["object"]["id"] for e in listed["data"]] == [session["id"]]
    event = listed["data"][0]
    assert stripe_api.request("GET", f"/v1/events/{event['id']}").json() == event
    assert event["data"]["object"]["payment_intent"] == session["payment_intent"]  # ids, not expanded
    wildcard = stripe_api.request("GET", "/v1/events", {"types": ["payment_intent.*"]}).json()
    assert {e["type"] for e in wildcard["data"]} == {"payment_intent.created", "payment_intent.succeeded"}
