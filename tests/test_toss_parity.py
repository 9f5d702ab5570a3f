"""The Toss gateway runs unchanged against a mocked Toss and against the sandbox: only ``API_BASE`` differs.

The same stories (pay, partial then full cancel, a declined confirm, a
confirm whose answer is lost and that ``reconcile`` settles, a lookup by order
id, a virtual account paid later with its ``DEPOSIT_CALLBACK``) run through :mod:`django_pgpay.payments` twice: once against Toss mocked
with ``responses`` from the recorded replies (``tests/toss_support.py``,
``https://api.tosspayments.com``), once against the sandbox on a live server
(``<live server>/sandbox/toss``). Same keys, same gateway class, same options
but the base URL. Each story must reach the same order states and ledgers,
and the gateway must send the same requests (method, path, body, auth,
idempotency keys) to both.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import responses

from django_pgpay import payments, webhooks
from django_pgpay.conf import get_gateway
from django_pgpay.exceptions import PaymentDeclined
from tests.toss_support import BASE, CLIENT_KEY, SECRET_KEY, TIMEOUT, TOSS, TossAPI

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()


@dataclass
class Backend:
    """One Toss: the mocked one or the sandbox; what a story needs from it."""

    name: str
    api_base: str
    wire: list = field(default_factory=list)

    def authorize(self, order) -> str:
        """The buyer pays in the window; returns the paymentKey the success URL carries."""
        raise NotImplementedError

    def lose_next_confirm_answer(self) -> None:
        raise NotImplementedError

    def decline_next_confirm(self) -> None:
        raise NotImplementedError

    def between_cancels(self) -> None:
        """Toss refuses a second cancel of one payment within a second; a person is never that fast."""

    def authorize_virtual_account(self, order) -> str:
        raise NotImplementedError

    def deposit(self, key: str) -> bytes:
        """The bank transfer arrives; returns the ``DEPOSIT_CALLBACK`` body Toss posts for it."""
        raise NotImplementedError


class MockedToss(Backend):
    def __init__(self, api: TossAPI):
        super().__init__("mocked Toss", BASE)
        self.api = api

    def authorize(self, order) -> str:
        return self.api.authorize(order)

    def lose_next_confirm_answer(self) -> None:
        self.api.fail_next("confirm", exception=TIMEOUT, after=True)

    def decline_next_confirm(self) -> None:
        self.api.fail_next("confirm", "REJECT_CARD_COMPANY")

    def authorize_virtual_account(self, order) -> str:
        return self.api.authorize(order, virtual_account=True)

    def deposit(self, key: str) -> bytes:
        self.api.deposit(key)
        payment = self.api.payments[key]
        body = {
            "createdAt": "2024-06-11T17:30:00.000000",
            "secret": payment["secret"],
            "status": "DONE",
            "transactionKey": "T1",
            "orderId": payment["orderId"],
        }
        return json.dumps(body).encode()


class Sandbox(Backend):
    def __init__(self, origin: str):
        super().__init__("sandbox", origin + "/sandbox/toss")
        self.origin = origin

    def authorize(self, order) -> str:
        from django_pgpay.sandbox import toss

        return toss.authenticate(order.order_number, int(order.amount), order_name=order.get_order_name(), origin=self.origin)["paymentKey"]

    def lose_next_confirm_answer(self) -> None:
        from django_pgpay.sandbox import control

        control.arm_fault("toss", "confirm", "error_after")

    def decline_next_confirm(self) -> None:
        from django_pgpay.sandbox import control

        control.arm_fault("toss", "confirm", "decline")

    def between_cancels(self) -> None:
        from django_pgpay.sandbox import control

        control.advance_clock(seconds=2)

    def authorize_virtual_account(self, order) -> str:
        from django_pgpay.sandbox import toss

        return toss.authenticate(order.order_number, int(order.amount), method="VIRTUAL_ACCOUNT", origin=self.origin)["paymentKey"]

    def deposit(self, key: str) -> bytes:
        from django_pgpay.sandbox import toss
        from django_pgpay.sandbox.models import SandboxWebhook

        toss.deposit(key)
        sent = SandboxWebhook.objects.filter(payment_key=key, event_type="DEPOSIT_CALLBACK").order_by("-id").first()
        return sent.body.encode()


def use(settings, backend: Backend):
    """The ``toss`` gateway with the shared keys, pointed at ``backend``; its wire recorded."""
    entry = copy.deepcopy(TOSS)
    if backend.api_base != BASE:
        entry["OPTIONS"]["API_BASE"] = backend.api_base
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": {**settings.PGPAY["GATEWAYS"], "toss": entry}}
    # The sandbox accepts the same (made-up) keys the mocked Toss does.
    # Its webhooks are queued, not sent (DELIVERY "manual" in the test settings): the test hands them over.
    settings.PGPAY_SANDBOX = {
        **settings.PGPAY_SANDBOX,
        "TOSS": {"SECRET_KEYS": [SECRET_KEY], "CLIENT_KEYS": [CLIENT_KEY], "WEBHOOK_URL": "/pay/toss/webhook/"},
    }
    gateway = get_gateway("toss")
    session = gateway.http.session
    send = session.request

    def recorded(method, url, data=None, headers=None, **kwargs):
        backend.wire.append((method, url, data, dict(headers or {}), dict(session.headers)))
        return send(method, url, data=data, headers=headers, **kwargs)

    session.request = recorded
    return gateway


def wire_of(backend: Backend, names: dict[str, str]) -> list[tuple]:
    """The requests sent, with the base URL cut and per-run ids (order, paymentKey, keys) named."""

    def name(text: str) -> str:
        for value in sorted(names, key=len, reverse=True):  # a confirm key holds its order number
            text = text.replace(value, names[value])
        return text

    calls = []
    for method, url, data, headers, session_headers in backend.wire:
        assert url.startswith(backend.api_base + "/v1/"), url
        sent = {**session_headers, **headers}
        assert sent["Authorization"] == AUTH
        body = json.loads(data) if data else None
        calls.append(
            (
                method,
                name(url[len(backend.api_base) :]),
                name(json.dumps(body, ensure_ascii=False, sort_keys=True)) if body is not None else None,
                name(sent.get("Idempotency-Key", "")),
                sent.get("Content-Type", ""),
            )
        )
    return calls


def ledger(order):
    return [(row.kind, row.status, row.amount) for row in order.transactions.order_by("pk")]


def story(backend: Backend, make_booking, seat) -> tuple[list, dict]:
    """Everything a shop does with Toss, through the operations; returns what happened and the ids to name."""
    seen = []
    names = {}

    # 1. Pay, cancel part, cancel the rest: the seat comes back once.
    booking = make_booking(gateway="toss")
    key = backend.authorize(booking)
    names.update({booking.order_number: "<order-1>", key: "<key-1>", payments.confirm_key(booking.order_number, key): "<confirm-1>"})
    outcome = payments.confirm(booking, payment_id=key, amount=Decimal(20000))
    seen.append(("paid", outcome.order.status, outcome.order.pg_payment_id == key, outcome.order.method, outcome.replayed))
    seen.append(("replayed", payments.confirm(booking, payment_id=key, amount=Decimal(20000)).replayed))
    looked_up = get_gateway("toss").lookup(order=booking.snapshot())
    seen.append(("lookup by order", looked_up.state, looked_up.amount, looked_up.payment_id == key, looked_up.canceled_amount))
    seat.refresh_from_db()
    held = seat.remain
    payments.cancel(booking, Decimal(5000), reason="고객 요청 부분 취소", idempotency_key="parity-cancel-1")
    booking.refresh_from_db()
    seen.append(("partly cancelled", booking.status, booking.canceled_amount, booking.balance))
    backend.between_cancels()
    payments.cancel(booking, payments.FULL, reason="고객 예약취소", idempotency_key="parity-cancel-2")
    booking.refresh_from_db()
    seat.refresh_from_db()
    seen.append(("cancelled", booking.status, booking.canceled_amount, seat.remain - held, ledger(booking)))

    # 2. The card company declines at confirm: the booking fails and frees its seat.
    declined = make_booking(gateway="toss")
    key = backend.authorize(declined)
    names.update({declined.order_number: "<order-2>", key: "<key-2>", payments.confirm_key(declined.order_number, key): "<confirm-2>"})
    backend.decline_next_confirm()
    with pytest.raises(PaymentDeclined) as refused:
        payments.confirm(declined, payment_id=key, amount=Decimal(20000))
    declined.refresh_from_db()
    seen.append(("declined", refused.value.code, declined.status, ledger(declined)))

    # 3. Toss approves but its answer is lost: pending, then reconcile finds it paid.
    lost = make_booking(gateway="toss")
    key = backend.authorize(lost)
    names.update({lost.order_number: "<order-3>", key: "<key-3>", payments.confirm_key(lost.order_number, key): "<confirm-3>"})
    backend.lose_next_confirm_answer()
    outcome = payments.confirm(lost, payment_id=key, amount=Decimal(20000))
    seen.append(("answer lost", outcome.pending, outcome.order.status, ledger(outcome.order)[0][:2]))
    lost.refresh_from_db()
    settled = payments.reconcile(lost)
    seen.append(("reconciled", settled.order.status, ledger(settled.order)))

    # 4. A virtual account: issued at confirm, paid by the bank later; Toss's DEPOSIT_CALLBACK is verified by its secret.
    account = make_booking(gateway="toss")
    key = backend.authorize_virtual_account(account)
    names.update({account.order_number: "<order-4>", key: "<key-4>", payments.confirm_key(account.order_number, key): "<confirm-4>"})
    outcome = payments.confirm(account, payment_id=key, amount=Decimal(20000))
    seen.append(("account issued", outcome.order.status, bool(outcome.order.pg_data.get("vbank_account_number"))))
    callback = backend.deposit(key)
    receipt = webhooks.receive(get_gateway("toss"), headers={"Content-Type": "application/json"}, body=callback)
    account.refresh_from_db()
    seen.append(("deposit callback", receipt.status, receipt.event.verified, receipt.event.event_type, account.status))
    return seen, names


def test_the_gateway_reaches_the_same_states_with_the_same_requests_against_mocked_toss_and_the_sandbox(
    settings, live_server, make_booking, seat
):
    type(seat).objects.filter(pk=seat.pk).update(remain=10)  # both runs keep two paid bookings
    # Against Toss, mocked.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mocked = MockedToss(TossAPI(rsps))
        use(settings, mocked)
        mocked_seen, mocked_names = story(mocked, make_booking, seat)

    # Against the sandbox, over HTTP; nothing mocked.
    from django_pgpay.sandbox import control

    control.reset()
    sandbox = Sandbox(live_server.url)
    use(settings, sandbox)
    sandbox_seen, sandbox_names = story(sandbox, make_booking, seat)

    assert sandbox_seen == mocked_seen
    assert mocked_seen[0] == ("paid", "PAID", True, "카드", False)
    assert mocked_seen[7][:2] == ("reconciled", "PAID")
    assert mocked_seen[-2:] == [
        ("account issued", "WAITING_FOR_DEPOSIT", True),
        ("deposit callback", 200, True, "DEPOSIT_CALLBACK", "PAID"),
    ]
    assert wire_of(sandbox, sandbox_names) == wire_of(mocked, mocked_names)
    paths = [call[1] for call in wire_of(sandbox, sandbox_names)]
    assert paths == [
        "/v1/payments/confirm",
        "/v1/payments/orders/<order-1>",
        "/v1/payments/<key-1>/cancel",
        "/v1/payments/<key-1>/cancel",
        "/v1/payments/confirm",
        "/v1/payments/confirm",
        "/v1/payments/<key-3>",
        "/v1/payments/confirm",
        "/v1/payments/<key-4>",
    ]


def test_only_the_base_url_differs(settings, live_server):
    """The two gateways of the test above, side by side: same class, same options but API_BASE."""
    mocked = use(settings, MockedToss(TossAPI(responses.RequestsMock())))
    mocked_options = dict(mocked._options)
    sandboxed = use(settings, Sandbox(live_server.url))
    assert type(sandboxed) is type(mocked)
    difference = {k for k in set(mocked_options) | set(sandboxed._options) if mocked_options.get(k) != sandboxed._options.get(k)}
    assert difference == {"API_BASE"}
    assert sandboxed.http.base_url == live_server.url + "/sandbox/toss" and mocked.http.base_url == BASE
