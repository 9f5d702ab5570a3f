"""The buyer's bank account a refund of a deposited virtual account goes to, as a person types it.

A card payment goes back to the card; money paid into a virtual account
(가상계좌) can only go back by bank transfer, to an account the buyer names.
Every PG asks for it with the cancel (Toss ``refundReceiveAccount``, PortOne
``refund_*`` / ``refundAccount``, Bootpay ``refund``), and refuses the cancel
without it. Until December 2026 neither the buyer's cancel form nor the admin's
refund form asked for it, so such a payment could not be refunded through the
shop at all (a browser review in Korean found it).

:func:`needed` says whether an order's refund needs an account;
:class:`RefundAccountForm` is the three fields (bank, number, holder, and a
phone number for the PGs that take one), added to the buyer's cancel
confirmation and to the admin's refund form for those orders. The bank is
chosen from the Korean banks' list (:data:`django_pgpay.labels.BANKS`, by the
3-digit code of the KFTC) and sent in each PG's own spelling
(:func:`bank_code`: Toss two digits, PortOne V2 its enum).
"""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from . import inputs, labels
from .gateways.results import RefundAccount
from .status import OrderStatus

#: Form field names (the cancel form's other fields are ``amount``, ``full``, ``reason``, ``token``...).
FIELDS = ("refund_bank", "refund_number", "refund_holder", "refund_phone")


def needed(order) -> bool:
    """Whether a refund of ``order`` goes by bank transfer: money was paid into a virtual account the PG issued.

    The order's payment method decides when the PG named it (an account issued,
    then withdrawn when the buyer paid by card after all, leaves its fields in
    ``pg_data``: that refund goes back to the card); an order whose method is
    not known is one when the PG issued it an account.
    """
    if order.status not in (OrderStatus.PAID, OrderStatus.PARTIAL_CANCELED):
        return False
    method = labels.method_code(order.method)
    if method:
        return method == "virtual_account"
    return bool((order.pg_data or {}).get("vbank_account_number"))


def bank_code(gateway, code: str) -> str:
    """The KFTC bank ``code`` (3 digits) as ``gateway``'s PG spells it (its ``refund_bank_code_style``)."""
    style = getattr(gateway, "refund_bank_code_style", "kftc")
    if style == "kftc2":  # Toss: "88" for Shinhan, the KFTC code's last two digits, but KB Kookmin's is "06"
        return TOSS_BANK_CODES.get(code, code[-2:])
    if style == "enum":  # PortOne V2: "SHINHAN"
        return labels.bank_enum(code) or code
    return code


#: Toss's codes that are not the last two digits of the KFTC's (Toss's bank code table: KB국민은행 "06").
TOSS_BANK_CODES = {"004": "06"}


def _digits(value: str) -> str:
    return re.sub(r"[\s-]", "", value)


class AccountFieldsMixin:
    """The checks of the refund account's fields and :meth:`account`, for any form that has them."""

    def clean_refund_number(self):
        number = _digits(self.cleaned_data["refund_number"])
        if not (number.isascii() and number.isdigit() and 6 <= len(number) <= 20):
            raise forms.ValidationError(_("Enter the account number: 6 to 20 digits."), code="invalid_account")
        return number

    def clean_refund_holder(self):
        try:
            holder = inputs.clean_text(self.cleaned_data["refund_holder"], field="holder", max_length=30)
        except inputs.InvalidInput:
            raise forms.ValidationError(_("The name contains characters that cannot be stored."), code="invalid_holder") from None
        if not holder:
            raise forms.ValidationError(_("Enter the account holder's name."), code="required")
        return holder

    def clean_refund_phone(self):
        phone = _digits(self.cleaned_data.get("refund_phone") or "")
        if phone and not (phone.isascii() and phone.isdigit() and 9 <= len(phone) <= 12):
            raise forms.ValidationError(_("Enter the phone number as digits (for example 010-1234-5678)."), code="invalid_phone")
        return phone

    def account(self, gateway) -> RefundAccount:
        """The account typed in, its bank in ``gateway``'s spelling (the form must be valid)."""
        data = self.cleaned_data
        return RefundAccount(
            bank=bank_code(gateway, data["refund_bank"]),
            number=data["refund_number"],
            holder=data["refund_holder"],
            phone=data.get("refund_phone") or "",
        )


class RefundAccountForm(AccountFieldsMixin, forms.Form):
    """Bank, account number, holder and (optional) phone of the buyer's refund account; all but the phone required."""

    refund_bank = forms.ChoiceField(label=_("Bank"), choices=lambda: [("", _("Choose the bank")), *labels.bank_choices()])
    refund_number = forms.CharField(
        label=_("Account number"),
        max_length=30,
        help_text=_("Digits; hyphens and spaces are left out."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    refund_holder = forms.CharField(label=_("Account holder"), max_length=30, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    refund_phone = forms.CharField(
        label=_("Phone number of the holder (optional)"),
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )


def describe(cleaned: dict) -> str:
    """The account of a valid form's ``cleaned_data`` as a person checks it: "Shinhan Bank 110123456789 (Park Toss)"."""
    bank = labels.BANKS.get(cleaned["refund_bank"], cleaned["refund_bank"])
    return f"{bank} {cleaned['refund_number']} ({cleaned['refund_holder']})"


__all__ = ["FIELDS", "AccountFieldsMixin", "RefundAccountForm", "bank_code", "describe", "needed"]
