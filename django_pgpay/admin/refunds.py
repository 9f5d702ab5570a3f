"""Refunds from the admin: the full-refund action and one order's refund in two steps.

Both call :func:`django_pgpay.payments.cancel` with ``source=STAFF``, the staff
user as ``actor``, the reason typed in and the form's token as idempotency key.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import labels, payments, refund_accounts
from ..exceptions import GatewayError, NotCancelable, PgPayError
from ..money import quantize
from ..status import OrderStatus, TransactionSource
from .forms import RefundForm, RefundReasonForm, _token


class RefundPages:
    """The refund action and views of the order admin (a mixin of :class:`~django_pgpay.admin.OrderAdminMixin`).

    Needs ``has_refund_permission``, ``_url``, ``_order_or_404`` and ``_page_context`` from it.
    """

    refund_confirmation_template = "admin/django_pgpay/order/refund_confirmation.html"
    refund_step_template = "admin/django_pgpay/order/refund_step.html"

    @admin.action(description=_("Refund selected orders in full"), permissions=["refund"])
    def refund_in_full(self, request, queryset):
        """Show what would be refunded; on the confirmed POST, refund each order's balance."""
        orders = list(queryset)
        if request.POST.get("post") == "yes":
            form = RefundReasonForm(request.POST)
            if form.is_valid():
                self._refund_all(request, orders, form.cleaned_data["reason"], form.cleaned_data["token"])
                return None
        else:
            form = RefundReasonForm(initial={"token": _token()})
        # An order waiting for a deposit has taken no money: its account is closed, nothing is refunded.
        to_close = [order for order in orders if order.is_cancelable and order.status == OrderStatus.WAITING_FOR_DEPOSIT]
        # One paid into a virtual account goes back to the buyer's bank account: one by one, from its page.
        one_by_one = [order for order in orders if refund_accounts.needed(order)]
        refundable = [
            order for order in orders if order.is_cancelable and order.status != OrderStatus.WAITING_FOR_DEPOSIT and order not in one_by_one
        ]
        totals: dict[str, object] = {}
        for order in refundable:
            totals[order.currency] = totals.get(order.currency, 0) + order.balance
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Refund orders in full"),
            "subtitle": None,
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "media": self.media,
            "form": form,
            "refundable": [(order, labels.money(order.balance, order.currency), labels.gateway(order.gateway)) for order in refundable],
            "refund_totals": [labels.money(total, currency) for currency, total in sorted(totals.items())],
            "to_close": [(order, labels.money(order.amount, order.currency), labels.gateway(order.gateway)) for order in to_close],
            "not_refundable": [
                *((order, self._why_not_refundable(order)) for order in orders if not order.is_cancelable),
                *((order, self._why_not_refundable(order)) for order in one_by_one),
            ],
            "queryset": orders,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "refund_in_full",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.refund_confirmation_template, context, status=400 if form.is_bound else 200)

    def _why_not_refundable(self, order) -> str:
        if order.is_cancelable and refund_accounts.needed(order):
            return gettext("Paid into a virtual account: the refund goes to the buyer's bank account; refund it from its order page.")
        if order.is_paid and order.balance <= 0:
            return gettext("Already refunded in full.")
        return gettext("%(status)s: no payment to refund.") % {"status": order.get_status_display()}

    def _refund_all(self, request, orders, reason: str, token: str) -> None:
        """Refund each order's balance; an order this token refunded already is a replay, not an error."""
        done = closed = replayed = 0
        candidates = [o for o in orders if (o.is_cancelable or o.is_paid) and not refund_accounts.needed(o)]
        skipped = [o for o in orders if refund_accounts.needed(o)]
        for order in candidates:
            waiting = order.status == OrderStatus.WAITING_FOR_DEPOSIT
            outcome = self._cancel(request, order, payments.FULL, reason, token, quiet_not_cancelable=not order.is_cancelable)
            if outcome is not None and not outcome.pending:
                if outcome.replayed:  # this form refunded it already (sent twice): nothing happened now
                    replayed += 1
                elif waiting:
                    closed += 1
                else:
                    done += 1
        if replayed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d order was already refunded by this form (it was sent twice); nothing more was done.",
                    "%(count)d orders were already refunded by this form (it was sent twice); nothing more was done.",
                    replayed,
                )
                % {"count": replayed},
                messages.INFO,
            )
        if done:
            self.message_user(
                request,
                ngettext("%(count)d order refunded in full.", "%(count)d orders refunded in full.", done) % {"count": done},
                messages.SUCCESS,
            )
        if closed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d virtual account closed (nothing had been paid into it).",
                    "%(count)d virtual accounts closed (nothing had been paid into them).",
                    closed,
                )
                % {"count": closed},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d order paid into a virtual account was not refunded: its refund goes to the buyer's bank "
                    "account, asked for on its order page (%(numbers)s).",
                    "%(count)d orders paid into a virtual account were not refunded: their refunds go to the buyers' bank "
                    "accounts, asked for on each order's page (%(numbers)s).",
                    len(skipped),
                )
                % {"count": len(skipped), "numbers": ", ".join(o.order_number for o in skipped)},
                messages.WARNING,
            )
        if not (done or closed or replayed or skipped) and not any(o.is_cancelable for o in orders):
            self.message_user(request, gettext("None of the selected orders can be refunded."), messages.WARNING)

    def _cancel(self, request, order, amount, reason: str, token: str, *, quiet_not_cancelable=False, refund_account=None):
        """Call :func:`payments.cancel`; report refusals as messages. The Outcome, or None when refused.

        :class:`NotCancelable` is raised to the caller unless ``quiet_not_cancelable``
        (then None): the single refund shows it on its form.
        """
        try:
            outcome = payments.cancel(
                order,
                amount,
                reason=reason,
                source=TransactionSource.STAFF,
                actor=request.user,
                idempotency_key=token,
                refund_account=refund_account,
            )
        except NotCancelable:
            if quiet_not_cancelable:
                return None
            raise
        except GatewayError as exc:
            self.message_user(
                request,
                gettext("%(pg)s refused the refund of order %(number)s: %(message)s (code %(code)s)")
                % {
                    "pg": labels.gateway(exc.gateway or order.gateway),
                    "number": order.order_number,
                    "message": exc.user_message,
                    "code": exc.code,
                },
                messages.ERROR,
            )
            return None
        except PgPayError as exc:
            self.message_user(
                request,
                gettext("Order %(number)s was not refunded: %(message)s") % {"number": order.order_number, "message": exc.user_message},
                messages.ERROR,
            )
            return None
        if outcome.pending:
            self.message_user(
                request,
                gettext(
                    "The PG has not answered about the refund of order %(number)s yet. "
                    "Reconciliation will settle it; check the ledger later."
                )
                % {"number": order.order_number},
                messages.WARNING,
            )
        return outcome

    def refund_view(self, request, object_id):
        """POST: refund an amount of one order, in two steps.

        The first POST (the order page's form) checks the amount and shows the
        confirmation page: the amount, the balance now and after. It changes
        nothing. The second POST (``confirm=yes``, the same token) refunds
        through :func:`payments.cancel`; sent twice, it refunds once.
        """
        if request.method != "POST":
            return HttpResponseRedirect(self._url("change", object_id))
        order = self._order_or_404(request, object_id)
        if not self.has_refund_permission(request, order):
            raise PermissionDenied
        confirming = request.POST.get("confirm") == "yes"
        form = RefundForm(request.POST, order=order, confirming=confirming)
        if not form.is_valid():
            return self._refund_step(request, order, form, status=400)
        if not confirming:
            return self._refund_step(request, order, form)
        amount, reason, token = form.cleaned_data["amount"], form.cleaned_data["reason"], form.cleaned_data["token"]
        closes_account = order.status == OrderStatus.WAITING_FOR_DEPOSIT
        try:
            outcome = self._cancel(request, order, amount, reason, token, refund_account=form.refund_account(order.get_gateway()))
        except NotCancelable as exc:
            order.refresh_from_db()
            form = RefundForm(request.POST, order=order)
            form.is_valid()
            if not form.errors:
                form.add_error(None, exc.user_message)
            return self._refund_step(request, order, form, status=400)
        if outcome is not None and not outcome.pending and closes_account:
            self.message_user(
                request,
                gettext("The virtual account of order %(number)s was closed; nothing had been paid into it.")
                % {"number": order.order_number},
                messages.SUCCESS,
            )
        elif outcome is not None and not outcome.pending:
            if outcome.replayed:
                message = gettext("This refund of %(amount)s was already made (the form was sent twice); nothing more was refunded.")
                level = messages.INFO
            else:
                message = gettext("Refunded %(amount)s of order %(number)s.")
                level = messages.SUCCESS
            self.message_user(
                request,
                message % {"amount": labels.money(outcome.transaction.amount, order.currency), "number": order.order_number},
                level,
            )
        return HttpResponseRedirect(self._url("change", order.pk))

    def _refund_step(self, request, order, form, *, status: int = 200):
        """The refund's confirmation page (or, when ``form`` has errors, the form again)."""
        amount = form.cleaned_data.get("amount") if form.is_valid() else None
        balance_after = order.balance - amount if amount is not None else None
        context = self._page_context(
            request,
            title=gettext("Refund from order %(number)s") % {"number": order.order_number},
            order=order,
            original=order,
            order_name=order.get_order_name(),
            form=form,
            amount=labels.money(amount, order.currency) if amount is not None else "",
            amount_value=f"{quantize(amount, order.currency):f}" if amount is not None else "",
            balance=labels.money(order.balance, order.currency),
            balance_after=labels.money(balance_after, order.currency) if balance_after is not None else "",
            refunds_all=balance_after is not None and balance_after == 0,
            refund_account=refund_accounts.describe(form.cleaned_data) if form.is_valid() and form.needs_account else "",
            gateway_name=labels.gateway(order.gateway),
            status_class=labels.status_class(order.status),
            change_url=self._url("change", order.pk),
            refund_url=self._url("refund", order.pk),
        )
        return TemplateResponse(request, self.refund_step_template, context, status=status)
