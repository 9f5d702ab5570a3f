"""An in-memory PG for tests and for trying the library without any account.

In a browser its payment page (``django_pgpay/checkout/fake.html``) pays with
one click; its state lives in the server process, so use it with
``runserver`` (one process), never with several workers. The payment sandbox
(``django_pgpay.sandbox``) speaks the PGs' real protocols; the quick start uses it.

:class:`FakeGateway` behaves like a real PG that has a confirm call, an
idempotency key on every money-moving call and a balance check on cancels, and
it can be told to fail in every way a real PG fails::

    gateway = get_gateway("fake")
    payment_id = gateway.pg.authorize(order.order_number, order.amount)   # the browser pays
    gateway.pg.fail_next("confirm", "timeout_after")                      # the answer is lost

State lives in the process (one :class:`FakePG` per alias), shared by threads,
so race tests can use it; :meth:`FakePG.reset` empties it between tests.

The fake is deliberately lax where real PGs differ: it approves whatever amount
the buyer authorised, so the library's own amount checks are what stop a
tampered payment.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from django.utils import timezone

from ..exceptions import (
    AlreadyCanceled,
    AlreadyProcessed,
    CancelRefused,
    GatewayUnavailable,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    WebhookVerificationError,
)
from ..money import MoneyError, parse_amount
from .base import BaseGateway
from .http import loads_json
from .results import (
    CancelEntry,
    CancelRequest,
    CancelResult,
    CheckoutResult,
    CheckoutUrls,
    ConfirmRequest,
    OrderSnapshot,
    ParsedWebhook,
    PaymentResult,
    PaymentState,
    ReturnParams,
)

#: Faults :meth:`FakePG.fail_next` understands.
FAULTS = frozenset(
    {
        "decline",  # confirm: the card is refused (definitive)
        "timeout_before",  # no answer, and the PG did nothing
        "timeout_after",  # the PG acted, but the answer was lost
        "connect_error",  # the connection never opened (nothing sent)
        "refuse",  # cancel: the PG refuses (e.g. not cancellable today)
        "server_error_after",  # 500 after the PG acted
    }
)


@dataclass
class FakePayment:
    payment_id: str
    order_number: str
    amount: Decimal
    currency: str
    method: str
    state: PaymentState
    virtual_account: bool = False
    approved_at: datetime | None = None
    cancels: list[CancelEntry] = field(default_factory=list)

    @property
    def canceled_amount(self) -> Decimal:
        return sum((c.amount for c in self.cancels), Decimal(0))

    def result(self) -> PaymentResult:
        return PaymentResult(
            state=self.state,
            payment_id=self.payment_id,
            order_number=self.order_number,
            amount=self.amount,
            currency=self.currency,
            canceled_amount=self.canceled_amount,
            method=self.method,
            approved_at=self.approved_at,
            cancels=tuple(self.cancels),
            raw={"payment_id": self.payment_id, "state": self.state.value, "amount": str(self.amount)},
        )


@dataclass(frozen=True)
class FakeCall:
    """One call that reached the fake PG (for assertions on duplicates)."""

    verb: str
    payment_id: str
    idempotency_key: str
    amount: Decimal | None


class FakePG:
    """The state of one fake PG account."""

    def __init__(self):
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.payments: dict[str, FakePayment] = {}
            self.by_order: dict[str, str] = {}
            self.replies: dict[tuple[str, str], object] = {}
            self.faults: dict[str, list[str]] = {}
            self.calls: list[FakeCall] = []
            #: Seconds every call takes before the PG acts (widens race windows in tests).
            self.latency = 0.0

    # --- what the buyer and the PG's staff do --------------------------------

    def authorize(
        self,
        order_number: str,
        amount,
        currency: str = "KRW",
        *,
        method: str = "card",
        virtual_account: bool = False,
    ) -> str:
        """The buyer pays in the PG's window; returns the new payment id."""
        with self.lock:
            payment_id = f"fake_{uuid.uuid4().hex[:20]}"
            self.payments[payment_id] = FakePayment(
                payment_id=payment_id,
                order_number=order_number,
                amount=Decimal(amount),
                currency=currency,
                method="virtual_account" if virtual_account else method,
                state=PaymentState.AUTHENTICATED,
                virtual_account=virtual_account,
            )
            self.by_order[order_number] = payment_id
            return payment_id

    def deposit(self, payment_id: str) -> None:
        """The money for a virtual account arrives."""
        with self.lock:
            payment = self.payments[payment_id]
            assert payment.state == PaymentState.WAITING_FOR_DEPOSIT, payment.state
            payment.state = PaymentState.APPROVED
            payment.approved_at = timezone.now()

    def expire(self, payment_id: str) -> None:
        """The PG gives up on a payment that was never approved."""
        with self.lock:
            payment = self.payments[payment_id]
            assert not payment.state.is_paid, payment.state
            payment.state = PaymentState.EXPIRED

    def cancel_at_pg(self, payment_id: str, amount=None) -> CancelEntry:
        """A cancel made in the PG's dashboard, not asked for by the shop."""
        with self.lock:
            payment = self.payments[payment_id]
            return self._cancel(payment, Decimal(amount) if amount is not None else payment.amount - payment.canceled_amount, "")

    def fail_next(self, verb: str, fault: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``verb`` (confirm, cancel, lookup) fail with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        with self.lock:
            self.faults.setdefault(verb, []).extend([fault] * times)

    def count(self, verb: str) -> int:
        """How many ``verb`` calls reached the PG (replays of an idempotency key included)."""
        with self.lock:
            return sum(1 for c in self.calls if c.verb == verb)

    # --- internals ------------------------------------------------------------

    def _fault(self, verb: str) -> str | None:
        queue = self.faults.get(verb)
        return queue.pop(0) if queue else None

    def _cancel(self, payment: FakePayment, amount: Decimal, reference: str) -> CancelEntry:
        entry = CancelEntry(
            pg_cancel_id=f"fakecancel_{uuid.uuid4().hex[:16]}",
            amount=amount,
            canceled_at=timezone.now(),
            reference=reference,
        )
        payment.cancels.append(entry)
        if payment.state == PaymentState.WAITING_FOR_DEPOSIT:
            payment.state = PaymentState.CANCELED
        else:
            payment.state = PaymentState.CANCELED if payment.canceled_amount >= payment.amount else PaymentState.PARTIAL_CANCELED
        return entry


_accounts: dict[str, FakePG] = {}
_accounts_lock = threading.Lock()


def fake_pg(alias: str) -> FakePG:
    """The shared fake PG account of ``alias``."""
    with _accounts_lock:
        return _accounts.setdefault(alias, FakePG())


class FakeGateway(BaseGateway):
    """A gateway to the in-memory :class:`FakePG`; see the module docstring.

    OPTIONS: none required. ``PARTIAL_CANCEL`` (default True) turns partial
    cancels off to exercise that path; :meth:`capabilities` reports it.
    """

    pg_name = "Fake PG"
    option_names = ("PARTIAL_CANCEL",)
    supports_partial_cancel = True
    supports_idempotency_key = True
    signs_webhooks = False
    supports_lookup_by_order = True
    supports_virtual_account = True
    requires_confirm_call = True

    def __init__(self, alias, options):
        super().__init__(alias, options)
        self.supports_partial_cancel = bool(options.get("PARTIAL_CANCEL", True))

    @property
    def pg(self) -> FakePG:
        return fake_pg(self.alias)

    def checkout(self, order: OrderSnapshot, urls: CheckoutUrls) -> CheckoutResult:
        """The fake "window": the payment is authorised now, and its Pay button is a GET to the success URL.

        A real PG authorises while the buyer is in its window; the fake has no
        window of its own, so the page it renders (``checkout/fake.html``)
        carries an already authorised payment id, and Pay sends the browser to
        the success URL with it, as :meth:`pay_url` does. Decline and Close go
        to the fail URL. In-memory: works with one server process only.
        """
        payment_id = self.pg.authorize(order.order_number, order.amount, order.currency)
        params = {
            "order_number": order.order_number,
            "amount": str(order.amount),
            "currency": order.currency,
            "payment_id": payment_id,
        }
        return CheckoutResult(
            kind="widget",
            template_name="django_pgpay/checkout/fake.html",
            params={**params, "success_url": urls.success_url, "fail_url": urls.fail_url},
        )

    def pay_url(self, order: OrderSnapshot, urls: CheckoutUrls, *, amount=None) -> str:
        """Authorise a payment as the buyer would and return the success URL the PG would redirect to."""
        paid = order.amount if amount is None else Decimal(amount)
        payment_id = self.pg.authorize(order.order_number, paid, order.currency)
        query = urlencode({"payment_id": payment_id, "order_number": order.order_number, "amount": str(paid)})
        return f"{urls.success_url}{'&' if '?' in urls.success_url else '?'}{query}"

    def parse_return(self, params: Mapping[str, str]) -> ReturnParams:
        amount = params.get("amount")
        try:
            parsed = parse_amount(amount) if amount not in (None, "") else None
        except MoneyError as exc:
            raise InvalidRequest(str(exc), gateway=self.alias, code="INVALID_AMOUNT") from exc
        return ReturnParams(
            payment_id=params.get("payment_id", ""),
            order_number=params.get("order_number", ""),
            amount=parsed,
            error_code=params.get("code", ""),
            error_message=params.get("message", ""),
        )

    def _call(self, verb: str, payment_id: str, key: str, amount) -> str | None:
        pg = self.pg
        if pg.latency:
            pg.lock.release()
            try:
                time.sleep(pg.latency)
            finally:
                pg.lock.acquire()
        pg.calls.append(FakeCall(verb, payment_id, key, amount))
        fault = pg._fault(verb)
        if fault == "connect_error":
            raise GatewayUnavailable("connection refused", gateway=self.alias, code="CONNECTION_ERROR", sent=False)
        if fault == "timeout_before":
            raise GatewayUnavailable("timed out", gateway=self.alias, code="TIMEOUT")
        return fault

    def confirm(self, request: ConfirmRequest) -> PaymentResult:
        pg = self.pg
        with pg.lock:
            fault = self._call("confirm", request.payment_id, request.idempotency_key, request.amount)
            replay_key = ("confirm", request.idempotency_key)
            if replay_key in pg.replies:
                return self._replay(pg.replies[replay_key])
            payment = pg.payments.get(request.payment_id)
            if payment is None or payment.order_number != request.order.order_number:
                raise NotFound("unknown payment", gateway=self.alias, code="NOT_FOUND_PAYMENT")
            if payment.state != PaymentState.AUTHENTICATED:
                raise AlreadyProcessed("already processed", gateway=self.alias, code="ALREADY_PROCESSED_PAYMENT")
            if fault == "decline":
                payment.state = PaymentState.FAILED
                error = PaymentDeclined("card declined", gateway=self.alias, code="REJECT_CARD_COMPANY", http_status=403)
                pg.replies[replay_key] = error
                raise error
            if payment.virtual_account:
                payment.state = PaymentState.WAITING_FOR_DEPOSIT
            else:
                payment.state = PaymentState.APPROVED
                payment.approved_at = timezone.now()
            result = payment.result()
            pg.replies[replay_key] = result
            if fault in ("timeout_after", "server_error_after"):
                raise GatewayUnavailable("answer lost", gateway=self.alias, code="TIMEOUT")
            return result

    def cancel(self, request: CancelRequest) -> CancelResult:
        pg = self.pg
        with pg.lock:
            fault = self._call("cancel", request.payment_id, request.idempotency_key, request.amount)
            replay_key = ("cancel", request.idempotency_key)
            if replay_key in pg.replies:
                return self._replay(pg.replies[replay_key])
            payment = pg.payments.get(request.payment_id)
            if payment is None:
                raise NotFound("unknown payment", gateway=self.alias, code="NOT_FOUND_PAYMENT")
            if payment.state == PaymentState.CANCELED:
                raise AlreadyCanceled("already cancelled", gateway=self.alias, code="ALREADY_CANCELED_PAYMENT")
            if payment.state not in (PaymentState.APPROVED, PaymentState.PARTIAL_CANCELED, PaymentState.WAITING_FOR_DEPOSIT):
                raise CancelRefused("not cancelable", gateway=self.alias, code="NOT_CANCELABLE_PAYMENT")
            if fault == "refuse":
                raise CancelRefused("refused by the PG", gateway=self.alias, code="REFUND_REJECTED", http_status=403)
            balance = payment.amount - payment.canceled_amount
            if request.balance_before != balance:
                # Like PortOne's checksum: a cancel computed from a stale balance is refused.
                raise CancelRefused("balance mismatch", gateway=self.alias, code="CHECKSUM_MISMATCH")
            if request.amount <= 0 or request.amount > balance:
                raise CancelRefused("amount exceeds balance", gateway=self.alias, code="NOT_CANCELABLE_AMOUNT")
            if request.amount != balance and not self.supports_partial_cancel:
                raise CancelRefused("partial cancel not allowed", gateway=self.alias, code="NOT_ALLOWED_PARTIAL_REFUND")
            entry = pg._cancel(payment, request.amount, request.idempotency_key)
            result = CancelResult(pg_cancel_id=entry.pg_cancel_id, amount=entry.amount, payment=payment.result())
            pg.replies[replay_key] = result
            if fault in ("timeout_after", "server_error_after"):
                raise GatewayUnavailable("answer lost", gateway=self.alias, code="TIMEOUT")
            return result

    def lookup(self, *, payment_id: str = "", order: OrderSnapshot | None = None) -> PaymentResult:
        pg = self.pg
        with pg.lock:
            fault = self._call("lookup", payment_id, "", None)
            if fault:
                raise GatewayUnavailable("lookup failed", gateway=self.alias, code="TIMEOUT")
            if not payment_id and order is not None:
                payment_id = order.payment_id or pg.by_order.get(order.order_number, "")
            payment = pg.payments.get(payment_id)
            if payment is None:
                raise NotFound("unknown payment", gateway=self.alias, code="NOT_FOUND_PAYMENT")
            return payment.result()

    def parse_received_webhook(self, headers: Mapping[str, str], body: bytes, *, received_at: datetime) -> ParsedWebhook:
        try:
            data = loads_json(body)
            payment_id = str(data["payment_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookVerificationError("malformed notification") from exc
        return ParsedWebhook(
            event_id=str(data.get("event_id") or ""),
            event_type=str(data.get("type") or "PAYMENT_CHANGED"),
            payment_id=payment_id,
            order_number=str(data.get("order_number") or ""),
            verified=False,
            raw=data if isinstance(data, dict) else {},
        )

    def _replay(self, stored):
        if isinstance(stored, Exception):
            raise stored
        return stored
