"""PortOne V1's prepare table (``/payments/prepare``): the amount a shop registers before the window opens.

``POST`` registers a ``merchant_uid``'s amount (and currency), ``PUT`` changes
it, ``GET /payments/prepare/{merchant_uid}`` reads it; a window that asks for
another amount is refused (:meth:`~.v1.PortOneSandbox.window_act`'s checkout
reads :class:`~django_pgpay.sandbox.models.SandboxPrepared`). Mixed into
:class:`~.v1.PortOneSandbox`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from .. import faults
from ..base import Answer, ApiContext, ApiError
from ..models import SandboxPrepared
from .common import money, number, wire

#: The longest ``merchant_uid`` PortOne takes.
MERCHANT_UID_MAX = 40


class PrepareTable:
    """The prepare table's API and the developer fault that lets another amount through."""

    def _prepare_body(self, ctx: ApiContext) -> tuple[str, Decimal, str | None]:
        data = self._data(ctx)
        if not isinstance(data, dict):
            raise ApiError("INVALID_REQUEST")
        merchant_uid, amount, currency = data.get("merchant_uid"), number(data.get("amount")), data.get("currency")
        if not isinstance(merchant_uid, str) or not merchant_uid or len(merchant_uid) > MERCHANT_UID_MAX:
            raise ApiError("INVALID_REQUEST", f"merchant_uid는 1~{MERCHANT_UID_MAX}자의 문자열이어야 합니다.")
        if amount is None or amount <= 0:
            raise ApiError("INVALID_REQUEST", "amount는 0보다 큰 숫자여야 합니다.")
        if currency in (None, ""):
            currency = None
        elif not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise ApiError("INVALID_REQUEST", "currency가 올바르지 않습니다.")
        return merchant_uid, amount, currency.upper() if currency else None

    def _prepared(self, row: SandboxPrepared) -> dict[str, Any]:
        return {"merchant_uid": row.key, "amount": wire(money(row.amount)), "currency": row.currency or None}

    def _prepared_row(self, merchant_uid: str) -> SandboxPrepared | None:
        return SandboxPrepared.objects.select_for_update().filter(pg=self.name, key=merchant_uid).first()

    def api_prepare(self, ctx: ApiContext, fault: faults.Fault | None = None, merchant_uid: str = "") -> Answer:
        method = ctx.request.method
        if method == "GET":
            row = SandboxPrepared.objects.filter(pg=self.name, key=merchant_uid).first()
            if row is None:
                raise ApiError("PREPARE_NOT_FOUND")
            return self.ok(self._prepared(row))
        merchant_uid, amount, currency = self._prepare_body(ctx)
        row = self._prepared_row(merchant_uid)
        if method == "PUT":
            if row is None:
                raise ApiError("PREPARE_NOT_FOUND")
        elif row is not None and str(self.config().get("PREPARE_AGAIN") or "error") != "overwrite":
            # unconfirmed: what PortOne answers a second registration; HTTP 200, code 1 here
            # ("overwrite" in the settings replaces it instead). Our gateway handles both.
            raise ApiError("PREPARE_REGISTERED")
        row = row or SandboxPrepared(pg=self.name, key=merchant_uid)
        row.amount, row.currency = amount, currency or ""
        row.save()
        return self.ok(self._prepared(row))

    def view_prepare(self, request: HttpRequest, merchant_uid: str = "") -> HttpResponse:
        allowed = ("GET",) if merchant_uid else ("POST", "PUT")
        if request.method not in allowed:
            return self._refuse(request, "METHOD_NOT_ALLOWED")

        def match(ctx):
            data = self._data(ctx)
            return [merchant_uid or (data.get("merchant_uid") if isinstance(data, dict) else "")]

        return self.serve(request, "prepare", self.api_prepare, match=match, merchant_uid=merchant_uid)

    def act_allow_other_amount(self, merchant_uid: str) -> dict[str, Any]:
        """A developer fault: the next window of ``merchant_uid`` opens with whatever amount the browser sends.

        Plays seed 003's tampered payment, which PortOne's prepare check would block.
        """
        with transaction.atomic():
            row = self._prepared_row(merchant_uid)
            if row is None:
                raise ApiError("PREPARE_NOT_FOUND")
            row.allow_other_amount = True
            row.save(update_fields=["allow_other_amount", "updated_at"])
        return self._prepared(row)
