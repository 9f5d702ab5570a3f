"""The Stripe module inside the sandbox framework: settings checks, control API, command, dashboard, hosted page."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from django_pgpay.sandbox import control
from django_pgpay.sandbox import stripe as emulated
from django_pgpay.sandbox.base import emulator
from django_pgpay.sandbox.checks import check_sandbox
from django_pgpay.sandbox.stripe.wire import parse_form

from .conftest import AVAILABLE_APPS
from .stripe_helpers import form_body, session_params, stripe_api  # noqa: F401 - fixtures

STRIPE = {"SECRET_KEYS": ["sk_test_x"], "WEBHOOK_SECRET": "whsec_x", "WEBHOOK_URL": "/pay/stripe/webhook/"}


def ids(messages):
    return sorted((m.id, m.msg) for m in messages)


# --- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, expected",
    [
        (STRIPE, []),
        (
            {**STRIPE, "SECRET_KEYS": ["sk_live_realKey"]},
            [("pgpay_sandbox.E003", "PGPAY_SANDBOX['STRIPE']['SECRET_KEYS'][0] does not start with \"sk_test_\".")],
        ),
        (
            {**STRIPE, "SECRET_KEYS": ["test_sk_tossStyle"]},
            [("pgpay_sandbox.E003", "PGPAY_SANDBOX['STRIPE']['SECRET_KEYS'][0] does not start with \"sk_test_\".")],
        ),
        (
            {**STRIPE, "WEBHOOK_SECRET": ""},
            [
                (
                    "pgpay_sandbox.W003",
                    'PGPAY_SANDBOX["STRIPE"]["WEBHOOK_SECRET"] is not set: events go out unsigned and a shop refuses them.',
                )
            ],
        ),
        (
            {**STRIPE, "WEBHOOK_SECRET": "secret"},
            [("pgpay_sandbox.E002", 'PGPAY_SANDBOX["STRIPE"]["WEBHOOK_SECRET"] must be a "whsec_..." string or a list of them.')],
        ),
        (
            {**STRIPE, "WEBHOOK_EVENTS": "charge.refunded"},
            [("pgpay_sandbox.E002", 'PGPAY_SANDBOX["STRIPE"]["WEBHOOK_EVENTS"] must be a list of event types (or ["*"]).')],
        ),
    ],
)
def test_settings_checks(settings, section, expected):
    settings.PGPAY_SANDBOX = {"STRIPE": section}
    assert ids(check_sandbox()) == expected


def test_a_live_key_is_never_printed(settings):
    settings.PGPAY_SANDBOX = {"STRIPE": {**STRIPE, "SECRET_KEYS": ["sk_live_51HrealSECRETvalue"]}}
    assert "51HrealSECRETvalue" not in repr([m.msg for m in check_sandbox()])


# --- the form parser ----------------------------------------------------------------------------------


def test_parse_form_reads_what_the_official_library_and_our_gateway_send():
    from django_pgpay.gateways.stripe import encode_form

    params = session_params("order-1", lines=[("a", 100, 1), ("b", 200, 3)])
    params["expand"] = ["payment_intent", "payment_intent.latest_charge"]
    params["metadata"] = {"0": "digits are keys under metadata", "order_id": "order-1"}
    assert parse_form(encode_form(params)) == json.loads(json.dumps(params, default=str), parse_int=str)
    assert parse_form(form_body(params)) == parse_form(encode_form(params))
    assert parse_form("expand[]=a&expand[]=b") == {"expand": ["a", "b"]}
    assert parse_form("metadata=&metadata[k]=v") == {"metadata": {"k": "v"}}


@pytest.mark.parametrize("text", ["a=1&a[b]=2", "a[b]=2&a=1", "a[]=1&a[x]=2"])
def test_parse_form_refuses_ambiguous_names(text):
    with pytest.raises(emulated.StripeError) as refused:
        parse_form(text)
    assert refused.value.status == 400 and not refused.value.keep


# --- control API, command, dashboard -------------------------------------------------------------------

pytestmark_live = pytest.mark.django_db(transaction=True, available_apps=AVAILABLE_APPS)


@pytestmark_live
def test_control_api_drives_the_emulated_stripe(stripe_api, sandbox_url):
    session = stripe_api.create_session("order-ctl").json()
    http = Client()
    paid = http.post(
        "/sandbox/control/stripe/pay",
        data={"session_id": session["id"], "card": "4000000000000002"},
        content_type="application/json",
        headers={"X-Sandbox-Control": "1"},
    )
    assert paid.status_code == 200 and paid.json()["outcome"] == "declined"
    paid = http.post(
        "/sandbox/control/stripe/pay",
        data={"session_id": session["id"]},
        content_type="application/json",
        headers={"X-Sandbox-Control": "1"},
    )
    assert paid.json()["success_url"].endswith(session["id"])
    intent = paid.json()["session"]["payment_intent"]
    refunded = http.post(
        "/sandbox/control/stripe/refund",
        data={"payment_key": intent, "amount": 1000},
        content_type="application/json",
        headers={"X-Sandbox-Control": "1"},
    )
    assert refunded.status_code == 200 and refunded.json()["amount"] == 1000 and refunded.json()["metadata"] == {}
    too_much = http.post(
        "/sandbox/control/stripe/refund",
        data={"payment_key": intent, "amount": 99999},
        content_type="application/json",
        headers={"X-Sandbox-Control": "1"},
    )
    assert too_much.status_code == 400 and too_much.json()["error"]["code"] == "amount_too_large"
    # The uniform names: cancel (a Dashboard refund) and state (the Checkout Session); refund and session still work.
    canceled = control.act("stripe", "cancel", payment_key=intent, amount=500)
    assert (canceled["object"], canceled["amount"]) == ("refund", 500)
    assert control.act("stripe", "state", payment_key=session["id"]) == control.act("stripe", "session", payment_key=session["id"])
    state = http.get("/sandbox/control/", headers={"X-Sandbox-Control": "1"}).json()
    assert state["pgs"]["stripe"] == {"configured": True, "actions": sorted(emulator("stripe").actions())}
    assert not any(p["key"].startswith("evt_") for p in state["payments"])
    assert {p["key"][:3]: p["amount"] for p in state["payments"]}["cs_"] == 15000


@pytestmark_live
def test_management_command(stripe_api):
    session = stripe_api.create_session("order-cmd").json()
    emulated.pay(session["id"])
    out = StringIO()
    call_command("pgpay_sandbox", "action", "stripe", "refund", f"payment_key={session['id']}", "amount=2500", stdout=out)
    assert json.loads(out.getvalue())["amount"] == 2500
    out = StringIO()
    call_command("pgpay_sandbox", "fault", "stripe", "checkout", "error_before", "--param", "status=503", stdout=out)
    assert json.loads(out.getvalue())["operation"] == "checkout"
    assert stripe_api.create_session("order-cmd-2").status_code == 503


@pytestmark_live
def test_dashboard_lists_sessions_and_refunds(stripe_api, sandbox_url):
    session = stripe_api.create_session("order-dash").json()
    emulated.pay(session["id"])
    http = Client()
    page = http.get("/sandbox/").content.decode()
    assert 'id="stripe-sessions"' in page and "order-dash" in page and "complete / paid" in page
    assert '"API_BASE": "http://testserver/sandbox/stripe"' in page
    intent = emulated.session_state(session["id"])["payment_intent"]
    done = http.post(
        "/sandbox/dashboard/action", {"op": "act", "pg": "stripe", "action": "refund", "payment_key": intent, "amount": "15001"}
    )
    assert "amount_too_large" in done["Location"] or "greater+than" in done["Location"]
    http.post("/sandbox/dashboard/action", {"op": "act", "pg": "stripe", "action": "refund", "payment_key": intent, "amount": "5000"})
    assert [e["data"]["object"]["amount_refunded"] for e in emulated.events("charge.refunded")] == [5000]
    other = stripe_api.create_session("order-dash-2").json()
    http.post("/sandbox/dashboard/action", {"op": "act", "pg": "stripe", "action": "expire", "payment_key": other["id"]})
    assert emulated.session_state(other["id"])["status"] == "expired"


# --- the hosted page without a browser ----------------------------------------------------------------------


@pytestmark_live
def test_hosted_page_form(stripe_api):
    session = stripe_api.create_session("order-page", customer_email="buyer@example.com", locale="ko").json()
    http = Client()
    url = session["url"].split("://", 1)[1].split("/", 1)[1]
    page = http.get("/" + url)
    text = page.content.decode()
    assert page.status_code == 200 and "₩15,000 결제" in text and "readonly" in text and "buyer@example.com" in text
    card = {"method": "card", "card_number": "4242424242424242", "card_expiry": "01 / 20", "card_cvc": "123"}
    expired_card = http.post("/" + url, card)
    assert expired_card.status_code == 400 and "카드 유효기간이 이미 지났습니다." in expired_card.content.decode()
    paid = http.post("/" + url, {**card, "card_expiry": "12/2040"})
    assert paid.status_code == 303 and paid["Location"] == session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
    again = http.post("/" + url, card)
    assert again.status_code == 409 and "결제가 완료되었습니다." in again.content.decode()
    assert http.get("/sandbox/stripe/c/pay/cs_test_nothing").status_code == 404


@pytestmark_live
def test_an_armed_confirm_fault_declines_the_next_attempt(stripe_api):
    session = stripe_api.create_session("order-fault").json()
    control.arm_fault("stripe", "confirm", "decline", code="card_declined", match="order-fault")
    assert emulated.pay(session["id"])["outcome"] == "declined"
    assert emulated.pay(session["id"])["outcome"] == "paid"
