"""The refund forms of the admin: one order's amount and reason, or the reason of a full refund."""

from __future__ import annotations

import copy
import uuid

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from .. import labels, refund_accounts
from ..money import MoneyError, WholeUnitsOnly, exponent, parse_typed_amount, quantize


def _token() -> str:
    return uuid.uuid4().hex[:24]


# Django 6's label of a blank choice (the admin's action menu; a select of a field with choices),
# which Django's own Korean catalogue leaves untranslated: ours carries it, so that the order
# pages read in Korean throughout. Only makemessages reads this line.
gettext_noop("- Select an option -")

TOKEN_FIELD = {"regex": r"^[A-Za-z0-9_-]{1,40}$", "widget": forms.HiddenInput}


class RefundReasonForm(forms.Form):
    """The reason for a full refund of the selected orders (the action's confirmation page)."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        help_text=_("Required. It is kept in the ledger with each refund."),
        widget=forms.TextInput(attrs={"size": 60, "required": True, "aria-required": "true"}),
    )
    #: Makes a resubmitted confirmation the same refunds (the PG's idempotency key).
    token = forms.RegexField(**TOKEN_FIELD)


class RefundForm(refund_accounts.AccountFieldsMixin, forms.Form):
    """A refund of part (or all) of one order's balance: amount and reason.

    For an order paid into a virtual account (:func:`django_pgpay.refund_accounts.needed`)
    it also asks for the buyer's bank account the money goes back to
    (:class:`~django_pgpay.refund_accounts.RefundAccountForm`'s fields); :meth:`refund_account`
    gives it in the PG's spelling.

    The amount is checked against the currency's decimals (KRW has none), must
    be positive and, unless ``confirming``, at most the balance. The
    confirmation step leaves the balance to :func:`payments.cancel`, which
    checks it with the order row locked *after* recognising a form sent twice
    (the same token), so a double click refunds once and says so.
    """

    amount = forms.CharField(label=_("Amount to refund"), max_length=40)
    reason = forms.CharField(label=_("Reason"), max_length=255, widget=forms.TextInput(attrs={"size": 40}))
    token = forms.RegexField(**TOKEN_FIELD)

    def __init__(self, *args, order, confirming: bool = False, **kwargs):
        self.order = order
        self.confirming = confirming
        kwargs.setdefault("initial", {"token": _token()})
        super().__init__(*args, **kwargs)
        balance = labels.money(order.balance, order.currency)
        self.fields["amount"].help_text = _("At most %(balance)s (what is left of the payment).") % {"balance": balance}
        self.fields["amount"].widget.attrs.update({"inputmode": "decimal", "autocomplete": "off"})
        #: The balance in the currency's digits, for the "Whole balance" button.
        self.balance_value = f"{quantize(order.balance, order.currency):f}"
        #: The refund goes back by bank transfer: the buyer's account is asked for.
        self.needs_account = refund_accounts.needed(order)
        if self.needs_account:
            self.fields.update(copy.deepcopy(refund_accounts.RefundAccountForm.base_fields))

    def account_fields(self):
        """The bound fields of the refund account (none for an order refunded to the card)."""
        return [self[name] for name in refund_accounts.FIELDS if name in self.fields]

    def refund_account(self, gateway):
        """The buyer's refund account in ``gateway``'s spelling, or None when the order needs none (the form is valid)."""
        return self.account(gateway) if self.needs_account else None

    def clean_amount(self):
        currency = self.order.currency
        try:
            amount = parse_typed_amount(self.cleaned_data["amount"], currency)
        except WholeUnitsOnly:
            raise forms.ValidationError(
                _("Type the amount in whole %(currency)s, without a decimal point (for example 1000 or 1,000)."),
                code="whole_units",
                params={"currency": currency},
            ) from None
        except MoneyError:
            typed = str(self.cleaned_data["amount"]).strip()
            if typed.startswith(("-", "\u2212", "\uff0d")):
                raise forms.ValidationError(_("The amount to refund must be more than zero."), code="not_positive") from None
            if exponent(currency) == 0:
                raise forms.ValidationError(
                    _("Type the amount in %(currency)s as digits (for example 1000 or 1,000)."),
                    code="invalid",
                    params={"currency": currency},
                ) from None
            raise forms.ValidationError(
                _("Enter an amount in %(currency)s with at most %(digits)s decimals."),
                code="invalid",
                params={"currency": currency, "digits": exponent(currency)},
            ) from None
        if amount <= 0:
            raise forms.ValidationError(_("The amount to refund must be more than zero."), code="not_positive")
        if not self.confirming and amount > self.order.balance:
            raise forms.ValidationError(
                _("The amount to refund exceeds what is left (%(balance)s)."),
                code="exceeds_balance",
                params={"balance": labels.money(self.order.balance, currency)},
            )
        return amount

    def clean(self):
        cleaned = super().clean()
        if not self.confirming and not self.order.is_cancelable:
            raise forms.ValidationError(_("This order has nothing left to refund."), code="not_cancelable")
        return cleaned
