"""Bootpay's Receipt object as a :class:`PaymentResult`: statuses, cancelled amounts, virtual accounts.

:class:`BootpayReceipts` is a base of :class:`~django_pgpay.gateways.bootpay.BootpayGateway`:
the pure reading of a receipt, apart from the calls. A receipt we cannot read is
an unknown outcome, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext_lazy as _

from ..exceptions import CancelRefused, GatewayUnavailable
from ..money import MoneyError, normalize_currency
from .results import PaymentResult, PaymentState, VirtualAccount
from .wire import kst_datetime

#: Receipt ``status`` codes that are payments (the others are billing keys and identity checks).
#: 20 means cancelled, in full *or in part*: ``cancelled_price`` tells which (see :func:`receipt_state`).
STATUSES: dict[int, PaymentState] = {
    0: PaymentState.PENDING,  # 결제대기
    1: PaymentState.APPROVED,  # 결제완료 (a partial cancel may leave it at 1 with cancelled_price > 0)
    2: PaymentState.AUTHENTICATED,  # 승인대기: waiting for our POST /v2/confirm
    5: PaymentState.WAITING_FOR_DEPOSIT,  # 가상계좌 발급완료
    20: PaymentState.CANCELED,  # 결제취소 (full or partial)
    # Legacy v1 codes (Bootpay's 2019-2022 documentation); v2 may still report them.
    3: PaymentState.AUTHENTICATED,  # 승인중: the approval is being processed
    -1: PaymentState.FAILED,  # 결제실패
    -2: PaymentState.FAILED,  # 승인실패
    -20: PaymentState.APPROVED,  # 취소실패: the payment stands
    -30: PaymentState.APPROVED,  # 취소진행중: the payment stands until the cancel is done
}
#: ``status`` of a receipt whose approval is under way (legacy): an unknown outcome, never a refusal.
STATUS_APPROVING = 3
#: ``status`` of a receipt answering a cancel that is under way (legacy): not done yet, an unknown outcome.
STATUS_CANCEL_IN_PROGRESS = -30
#: ``status`` of a receipt answering a cancel that failed (legacy): the payment stands, a refusal.
STATUS_CANCEL_FAILED = -20
#: Receipt statuses of other Bootpay products (billing key, identity): never a payment of ours.
OTHER_PRODUCT_STATUSES = frozenset({11, 12, 41})


class BootpayReceipts:
    """Reading Bootpay's receipts (a base of :class:`~django_pgpay.gateways.bootpay.BootpayGateway`)."""

    def cancel_receipt(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """The receipt a cancel answered with, once the cancel is done (raises otherwise).

        Legacy -30 (취소진행중): accepted, not done (the money may still not go
        back: -20, 취소실패); an unknown outcome a lookup settles. -20: refused.
        v2's negative codes are unconfirmed.
        """
        status = data.get("status")
        if status == STATUS_CANCEL_IN_PROGRESS:
            raise GatewayUnavailable(
                f"{self.alias}: the cancel is in progress at Bootpay", gateway=self.alias, code="CANCEL_IN_PROGRESS", response=dict(data)
            )
        if status == STATUS_CANCEL_FAILED:
            raise CancelRefused(_("Bootpay could not cancel the payment."), gateway=self.alias, code="CANCEL_FAILED", response=dict(data))
        return data

    def payment(self, data: Mapping[str, Any]) -> PaymentResult:
        """Read a Receipt object; a reply we cannot read is an unknown outcome, never a guess."""
        try:
            status = data["status"]
            if isinstance(status, bool) or not isinstance(status, int) or status not in STATUSES:
                raise ValueError(f"status {status!r}")
            price = self.decimal(data["price"])
            cancelled = self.decimal(data.get("cancelled_price") or 0)
            currency = normalize_currency(str(data.get("currency") or data.get("unit") or "KRW"))
            receipt_id, order_id = data["receipt_id"], data["order_id"]
            if not (isinstance(receipt_id, str) and receipt_id and isinstance(order_id, str) and order_id):
                raise ValueError("no receipt_id or order_id")
        except (KeyError, TypeError, ValueError, ArithmeticError, MoneyError) as exc:
            raise self.malformed("Receipt", exc, data) from exc
        if not (price.is_finite() and cancelled.is_finite()) or price < 0 or not 0 <= cancelled <= price:
            raise GatewayUnavailable(f"{self.alias}: inconsistent amounts", gateway=self.alias, code="MALFORMED_REPLY")
        state, cancelled = receipt_state(status, price, cancelled)
        vbank = data.get("vbank_data")
        account = None
        if isinstance(vbank, Mapping) and vbank.get("bank_account"):
            account = VirtualAccount(
                bank=str(vbank.get("bank_code") or vbank.get("bank_name") or ""),
                number=str(vbank["bank_account"]),
                holder=str(vbank.get("bank_username") or ""),
                due=kst_datetime(vbank.get("expired_at")),
            )
        return PaymentResult(
            state=state,
            payment_id=receipt_id,
            order_number=order_id,
            amount=price,
            currency=currency,
            canceled_amount=cancelled,
            method=str(data.get("method") or data.get("method_symbol") or ""),
            receipt_url=str(data.get("receipt_url") or ""),
            approved_at=kst_datetime(data.get("purchased_at")),
            failure_code=f"STATUS_{status}" if state == PaymentState.FAILED else "",
            failure_message=str(data.get("status_locale") or "") if state == PaymentState.FAILED else "",
            virtual_account=account,
            raw=dict(data),
        )


def receipt_state(status: int, price: Decimal, cancelled: Decimal) -> tuple[PaymentState, Decimal]:
    """The state and cancelled amount of a receipt.

    Status 20 covers full and partial cancels: ``cancelled_price`` below the
    price is a partial cancel, and a 20 without ``cancelled_price`` is taken
    as cancelled in full (a virtual account withdrawn before its deposit). A
    paid receipt (1) with ``cancelled_price`` is partially cancelled too.
    """
    state = STATUSES[status]
    if status == 20 and cancelled == 0:
        cancelled = price
    if state in (PaymentState.APPROVED, PaymentState.CANCELED) and cancelled > 0:
        state = PaymentState.CANCELED if cancelled >= price else PaymentState.PARTIAL_CANCELED
    return state, cancelled


__all__ = ["OTHER_PRODUCT_STATUSES", "STATUSES", "STATUS_APPROVING", "BootpayReceipts", "receipt_state"]
