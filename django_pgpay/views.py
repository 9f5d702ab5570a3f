"""Views: mixins for the shop's own checkout page, and ready views for the PG's side.

* :class:`CheckoutMixin`: the shop's "pay for this" view. Creates (or reuses)
  the buyer's READY order and reserves its stock in one transaction, then
  renders the gateway's payment window.
* :class:`ConfirmMixin` / :class:`ReturnView`: the URL the PG sends the buyer
  back to. Runs :func:`django_pgpay.payments.confirm` and shows success,
  failure or "being processed".
* :class:`CancelMixin` / :class:`CancelView`: POST only (CSRF-checked); the
  order's owner or staff may give back all or part of a payment.
* :class:`WebhookView`: one URL per gateway alias; see :mod:`django_pgpay.webhooks`.
* :class:`InvoiceMixin` / :class:`InvoiceView`: the order's PDF invoice, for its
  owner or staff (see :mod:`django_pgpay.invoices`).

Orders are named in URLs by their order number (see :mod:`django_pgpay.orders`).
No view ever answers 500 for bad input or a PG in trouble: errors carry their
own ``http_status`` (4xx for bad input, 502/503 when the PG is the problem).
Every template extends ``django_pgpay/base.html``; override it (or any page)
in the project's templates.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import checkout_forms, checkout_locks, conf, inputs, labels, ledger, payments, permissions, refund_accounts, tasks, webhooks
from .exceptions import (
    AmountMismatch,
    ConfigurationError,
    GatewayError,
    GatewayUnavailable,
    OperationInProgress,
    OperationRefused,
    PaymentDeclined,
    PgPayError,
    SoldOut,
)
from .gateways.results import CheckoutUrls
from .money import MoneyError, WholeUnitsOnly, parse_typed_amount, quantize
from .orders import find_order, order_model_named
from .status import CANCELABLE_STATUSES, OrderStatus, TransactionKind, TransactionSource

logger = logging.getLogger("django_pgpay.views")

#: What went wrong in the payment window, by kind, in the buyer's words. None says "you can try
#: again": the page offers that itself (``retry_url``), only where the shop knows how to pay again.
FAIL_KIND_MESSAGES = {
    "closed": _("You closed the payment window before paying."),
    "declined": _("The card company or the payment provider declined the payment."),
    "aborted": _("The payment was stopped before it was approved."),
    "amount": _("The amount in the payment window did not match the order, so the payment was not made."),
    "expired": _("The time to finish the payment ran out."),
    "": _("The payment was not completed."),
}

#: Failure codes a PG puts on its fail URL, and what kind of failure each is. The PG's own
#: message travels in the query string, so it is never shown as is (see :func:`fail_kind`).
FAIL_KINDS = {
    # Toss Payments (failUrl?code=), Bootpay (event=cancel/error), Stripe (cancel_url): our names.
    "PAY_PROCESS_CANCELED": "closed",
    "PAY_PROCESS_ABORTED": "aborted",
    "REJECT_CARD_COMPANY": "declined",
    "REJECT_CARD_PAYMENT": "declined",
    "REJECT_ACCOUNT_PAYMENT": "declined",
    "REJECT_TOSSPAY_INVALID_ACCOUNT": "declined",
    "INVALID_STOPPED_CARD": "declined",
    "FDS_ERROR": "declined",
    "EXCEED_MAX_DAILY_PAYMENT_COUNT": "declined",
    "EXCEED_MAX_PAYMENT_AMOUNT": "declined",
    "EXCEED_MAX_CARD_INSTALLMENT_PLAN": "declined",
    "NOT_FOUND_PAYMENT_SESSION": "expired",
    "EXPIRED_PAYMENT": "expired",
    # PortOne V1 (error_code; PortOne has no code system for these, the message decides too).
    "F400": "closed",
    "F1002": "declined",
    "F0005": "amount",
    # PortOne V2 (code): a PG's refusal and a closed window are both FAILURE_TYPE_PG.
    "FAILURE_TYPE_PG": "declined",
}

#: Words in a PG's message that tell which kind of failure a code shared by several is:
#: (kind, alternatives), each alternative words that must all be in the message.
_FAIL_MESSAGE_HINTS = (
    # A refusal first: "...승인 거절로 거래가 취소되었습니다" is a decline, not a closed window; an expired *card*
    # ("유효기간이 만료된 카드", "Your card has expired") is a decline too, not the payment's time running out.
    ("declined", (("거절",), ("한도",), ("승인", "실패"), ("유효기간",), ("카드", "만료"), ("declin",), ("card", "expired"))),
    ("closed", (("사용자", "취소"), ("결제를", "취소"), ("결제창",), ("user", "cancel"), ("customer", "cancel"))),
    ("amount", (("금액", "일치"), ("amount", "match"))),
    ("expired", (("입금", "기한"), ("결제", "기한"), ("시간", "초과"), ("session", "expire"), ("timed", "out"))),
)

#: What a PG's failure code looks like (``REJECT_CARD_COMPANY``, ``F1002``, ``card_declined``): anything
#: else on the fail URL (a sentence, which anyone can put there) is not shown as the "error code".
_FAIL_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)


def fail_kind(code: str, pg_message: str = "") -> str:
    """The kind of a failure reported on the fail URL: ``closed``, ``declined``, ``aborted``, ``amount``, ``expired`` or ``""``.

    By the code where it says (:data:`FAIL_KINDS`). PortOne's codes are
    shared by a closed window and a refusal (V2 ``FAILURE_TYPE_PG``) or are
    no system at all (V1), so for those, and for codes not listed, the PG's
    message picks among our own sentences ("사용자가 결제를 취소하였습니다"
    is a closed window). The message is only read, never shown: a forged one
    can only pick another of our sentences.
    """
    kind = FAIL_KINDS.get(code, "")
    if code in FAIL_KINDS and code not in _SHARED_CODES:
        return kind
    text = (pg_message or "").lower()
    for hinted, alternatives in _FAIL_MESSAGE_HINTS:
        if any(all(word in text for word in words) for words in alternatives):
            return hinted
    return kind


#: Codes of :data:`FAIL_KINDS` that several kinds of failure share: their message is read too.
_SHARED_CODES = frozenset({"FAILURE_TYPE_PG"})


def _status(error: PgPayError) -> int:
    """The HTTP status for an error: never 500 (a configuration error is the PG side's 503)."""
    status = int(getattr(error, "http_status", 400) or 400)
    return 503 if status >= 500 and not isinstance(error, GatewayError) else status


class GatewayMixin:
    """The gateway named by the URL's ``alias`` (404 for an alias that is not configured)."""

    #: Restrict the order search to these models (classes or ``"app.Model"`` labels).
    order_models = None
    #: The alias when the URL has no ``alias`` argument (``ReturnView.as_view(gateway_alias="toss")``).
    gateway_alias: str | None = None

    def get_gateway(self):
        alias = self.kwargs.get("alias") or self.gateway_alias
        if alias not in conf.gateway_aliases():
            raise Http404("unknown gateway")
        return conf.get_gateway(alias)

    def find_order(self, order_number: str, *, gateway: str | None = None):
        """The order with this number, or 404 (an ambiguous number is a 404 too, logged).

        Where the URL names the order's model (a ``model`` argument, ``app_label.model``),
        only that model is searched; a label that is not one of :attr:`order_models` is a 404.
        """
        models = self.order_models
        if "model" in self.kwargs:
            model = order_model_named(self.kwargs["model"], self.order_models)
            if model is None:
                raise Http404("no such order")
            models = [model]
        try:
            order = find_order(order_number, gateway=gateway, models=models)
        except PgPayError as exc:
            logger.error("order %s: %s", order_number, exc)
            order = None
        if order is None:
            raise Http404("no such order")
        return order


# --- checkout ---------------------------------------------------------------------


def checkout_urls(
    request, order, *, return_url_name: str = "django_pgpay:return", fail_url_name: str = "django_pgpay:fail"
) -> CheckoutUrls:
    """The absolute return, fail, webhook and attempt URLs of ``order`` (all but the webhook with its buyer token).

    ``return_url_name`` / ``fail_url_name``: the URL names of the shop's own
    return and fail views (a :class:`ConfirmMixin` mounted elsewhere, taking
    the ``alias`` argument), which get the buyer token all the same. Without
    it a buyer who comes back without their session (a cleared cookie, a
    payment app returning in another browser) is refused and the payment is
    never confirmed.
    """
    alias = {"alias": order.gateway}
    build = request.build_absolute_uri
    token = urlencode({permissions.BUYER_TOKEN_PARAM: permissions.buyer_token(order.order_number)})
    return CheckoutUrls(
        success_url=build(reverse(return_url_name, kwargs=alias)) + "?" + token,
        fail_url=build(reverse(fail_url_name, kwargs=alias)) + "?" + token,
        webhook_url=build(reverse("django_pgpay:webhook", kwargs=alias)),
        attempt_url=build(reverse("django_pgpay:attempt", kwargs=alias)) + "?" + token,
    )


class CheckoutMixin:
    """The shop's checkout view: one READY order per buyer and thing, stock reserved, payment window shown.

    GET renders ``start_template_name`` (a summary with a button; nothing
    changes on GET). POST creates the order, or reuses the buyer's READY order
    for the same thing, and renders the gateway's payment window. When the
    buyer picks another gateway than that READY order's, the old order is
    expired (its stock released) and a new one reserves in the same
    transaction: one buyer holds one seat whichever PG they try. Creating and
    reserving happen in one transaction while the buyer's checkout lock is held
    (:mod:`~django_pgpay.checkout_locks`), so two tabs or a double click never hold two seats; when ``reserve()``
    finds no stock, ``sold_out_template_name`` is rendered with status 409.

    A subclass sets :attr:`order_model` and implements
    :meth:`get_order_lookup` (the fields that make two orders "the same
    thing", e.g. ``{"seat": seat}``) and :meth:`get_order_defaults` (the
    amount and anything else a new order needs).

    The start form should render ``{% pgpay_checkout_token %}`` (``{% load
    pgpay %}``) and post to ``{{ checkout_action }}``: posted again once its
    order is paid (the back button after paying, a stale tab), it shows that
    order (:meth:`already_paid`) instead of starting a second one; a buyer
    who has paid for the same thing already is asked before another order
    is started (:meth:`paid_before`) (:mod:`django_pgpay.checkout_forms`).
    """

    order_model = None
    #: Gateway alias for new orders (``PGPAY["DEFAULT_GATEWAY"]`` when None).
    gateway_alias: str | None = None
    start_template_name = "django_pgpay/checkout_start.html"
    template_name = "django_pgpay/checkout.html"
    sold_out_template_name = "django_pgpay/sold_out.html"
    #: Asks a buyer who has paid for the same thing already whether to pay for another one.
    checkout_again_template_name = "django_pgpay/checkout_again.html"
    #: Let buyers without an account pay. Their orders are known by this browser's session and by
    #: the start form's token: the same form posted again, or another page of the same session,
    #: comes back to the READY order or shows the paid one, as for a buyer with an account
    #: (``_buyer_scopes()``).
    allow_anonymous = False

    def get_order_model(self):
        if self.order_model is None:
            raise ConfigurationError(f"{type(self).__name__}.order_model is not set.")
        return self.order_model

    def get_gateway_alias(self) -> str:
        return self.gateway_alias or conf.default_gateway_alias()

    def get_order_lookup(self) -> dict:
        """Fields that identify the thing bought; a READY order with them is reused."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_order_lookup()")

    def get_order_defaults(self) -> dict:
        """Fields of a new order besides the lookup: at least ``amount``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_order_defaults()")

    def get_buyer_fields(self) -> dict:
        """``buyer_name`` / ``buyer_email`` for a new order, from the user account."""
        user = self.request.user
        if not user.is_authenticated:
            return {}
        name = (user.get_full_name() if hasattr(user, "get_full_name") else "") or user.get_username()
        return {"buyer_name": name[:100], "buyer_email": getattr(user, "email", "") or ""}

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs) if hasattr(super(), "get_context_data") else dict(kwargs)
        context.setdefault("view", self)
        return context

    def get_or_create_order(self):
        """``(order, created)``: the buyer's unexpired READY order for the lookup, or a new one with stock reserved.

        Raises :class:`~django_pgpay.exceptions.SoldOut` when ``reserve()`` returns False.
        """
        model = self.get_order_model()
        user = self.request.user
        lookup = self.get_order_lookup()
        alias = self.get_gateway_alias()
        if alias not in conf.gateway_aliases():
            # Before anything is reserved: an order of an unknown PG could never be paid, and its
            # stock would be held until it expired (``/book/<seat>/tosss/`` did that, then a 500).
            raise Http404("unknown gateway")
        token = checkout_forms.clean(self.request.POST.get(checkout_forms.FIELD))
        using = router.db_for_write(model)
        # One buyer's checkouts wait for each other here (a guest's: those of one form): the second
        # finds the order the first made. Not on the user row: see checkout_locks.
        lock = checkout_locks.key_for_user(user.pk) if user.is_authenticated else checkout_locks.key_for(token)
        # The buyer's open order at another PG is given up below, its checkout closed at that PG
        # first: here, before the locks (Stripe: a call or two per Session it made).
        self._checkouts_closed = self._close_other_checkouts(model, lookup, alias, token)
        with transaction.atomic(using=using), checkout_locks.held(lock, using=using, user=user if user.is_authenticated else None):
            ready_scope, paid_scope = self._buyer_scopes(model, lookup, token)
            if ready_scope is not None:
                # The buyer's READY order for the same thing, its hold lapsed or not
                # (reconciliation may not have expired it yet): it still holds the stock.
                existing = self._ready_order(model, ready_scope, lookup)
                if existing is None:
                    self._check_paid_before(model._base_manager.filter(paid_scope, **lookup), token)
                else:
                    reused = self._come_back_to(existing, alias, token)
                    if reused is not None:
                        if not user.is_authenticated:
                            checkout_forms.remember_in_session(self.request, reused)
                        return reused, False
            order = model(
                user=user if user.is_authenticated else None,
                gateway=alias,
                **{**self.get_buyer_fields(), **self.get_order_defaults(), **lookup},
            )
            if token is not None:
                checkout_forms.record(order, token)
            if not order.reserve():
                raise SoldOut()
            order.save()
        if not user.is_authenticated:
            checkout_forms.remember_in_session(self.request, order)
        return order, True

    @staticmethod
    def _ready_order(model, ready_scope, lookup: dict):
        """The buyer's newest READY order in ``ready_scope`` for ``lookup``, locked; None when there is none.

        Found without a lock, then locked by its primary key and read again: a
        ``FOR UPDATE`` over the buyer's orders would lock every row it looks at
        on the way (MariaDB locks the buyer's PAID orders it scans through the
        user index), and wait there for any cancel of theirs. An order paid or
        expired meanwhile is no order to come back to.
        """
        candidate = (
            model._base_manager.filter(ready_scope, status=OrderStatus.READY, **lookup)
            .order_by("-created", "-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if candidate is None:
            return None
        return model._base_manager.select_for_update().filter(pk=candidate, status=OrderStatus.READY).first()

    def _buyer_scopes(self, model, lookup: dict, token: str | None):
        """``(ready, paid)``: which orders are the buyer's, to come back to and to ask about; ``(None, None)``: none.

        A buyer with an account: their orders (their checkouts run one at a time,
        on their :mod:`~django_pgpay.checkout_locks` slot); asking about a paid one also
        counts the orders this browser started before logging in (a guest who
        paid, logged in and posted the same form).

        A guest (``allow_anonymous``): the orders this browser's session started,
        and the orders that recorded the posted token, a token of the library's
        making only (:func:`~django_pgpay.checkout_forms.is_ours`; they hold 96
        random bits). A guest comes back only to a guest's READY order; asking
        about a paid one also counts an account's order of that token (a buyer
        who paid, logged out and posted the same form). Two posts of one form at
        the same instant run one after the other (:mod:`~django_pgpay.checkout_locks`,
        taken by :meth:`get_or_create_order`); two tabs posted at the same
        instant may still start two orders, and the one not paid expires.
        """
        user = self.request.user
        started_here = checkout_forms.session_orders(self.request)
        if user.is_authenticated:
            mine = Q(user=user)
            before_login = Q(user__isnull=True, order_number__in=started_here)
            return mine, (mine | before_login) if started_here else mine
        if not self.allow_anonymous:
            raise PermissionDenied("anonymous checkout")
        of_token = self._orders_of_token(model, lookup, token)
        if not started_here and not of_token:
            return None, None
        guest = Q(user__isnull=True) & (Q(order_number__in=started_here) | Q(pk__in=of_token))
        return guest, guest | Q(pk__in=of_token)

    @staticmethod
    def _orders_of_token(model, lookup: dict, token: str | None) -> list:
        """Primary keys of the orders for ``lookup`` whose ``pg_data`` records ``token`` (of the library's making)."""
        candidates = model._base_manager.filter(**lookup).only("pk", "pg_data")
        return [order.pk for order in checkout_forms.orders_recording(candidates, token)]

    def _close_other_checkouts(self, model, lookup: dict, alias: str, token: str | None) -> dict:
        """``{pk: completed}`` of the buyer's READY orders for ``lookup`` at another PG, their checkouts closed.

        Each value is ``(completed, attempts)``: ``completed`` is True when the
        buyer completed that checkout meanwhile (the order is kept); ``attempts``
        the checkouts closed (:meth:`~django_pgpay.gateways.base.BaseGateway.known_attempts`).
        Read without a lock: :meth:`_come_back_to` decides under the lock, and
        closes the checkouts again when the order made another meanwhile (a second tab).
        """
        ready_scope, _paid = self._buyer_scopes(model, lookup, token)
        if ready_scope is None:
            return {}
        found = {}
        for other in model._base_manager.filter(ready_scope, status=OrderStatus.READY, **lookup).exclude(gateway=alias)[:5]:
            gateway = other.get_gateway()
            attempts = frozenset(gateway.known_attempts(other.pg_data or {}))
            try:
                gateway.abandon(other.snapshot())
                found[other.pk] = (False, attempts)
            except OperationInProgress:
                found[other.pk] = (True, attempts)
        return found

    def _come_back_to(self, existing, alias: str, token: str | None):
        """The buyer's READY order ``existing`` (locked): reused for ``alias``, or None once it is expired."""
        if existing.gateway == alias:
            fields = ["pg_data"] if token is not None and checkout_forms.record(existing, token) else []
            if existing.expires_at is None or existing.expires_at <= timezone.now():
                # Lapsed: the buyer is back, so the hold starts again.
                existing.expires_at = timezone.now() + conf.ready_timeout()
                fields += ["expires_at"]
            if fields:
                existing.save(update_fields=[*fields, "modified"])
            return existing
        # The buyer switched PG: the order opened at the other PG gives
        # its stock back (EXPIRED, once) before the new one takes it, so
        # a buyer never holds two. A payment still being confirmed there
        # keeps its order; the buyer finishes paying at that PG.
        completed, attempts = getattr(self, "_checkouts_closed", {}).get(existing.pk, (False, None))
        if completed:  # the buyer completed that checkout: they finish paying there
            return existing
        # Closed before the lock, unless another tab made a window since (then closed again here).
        unchanged = attempts == frozenset(existing.get_gateway().known_attempts(existing.pg_data or {}))
        try:
            payments.expire(existing, source=TransactionSource.CUSTOMER, close_checkout=not unchanged)
        except OperationInProgress:
            return existing
        return None

    def _check_paid_before(self, mine, token: str | None) -> None:
        """Before a new order: has the buyer paid for this already? (One query, under the buyer's lock.)

        ``mine`` is the buyer's orders for the same thing. A stale form
        (:func:`django_pgpay.checkout_forms.is_stale`) raises ``ALREADY_PAID``:
        the buyer is shown that order. Any other form raises ``PAID_BEFORE``
        unless it says ``pgpay_another=1``: the buyer is asked first
        (:meth:`paid_before`), whose page posts the same form with it.
        """
        candidates = list(
            mine.filter(status__in=CANCELABLE_STATUSES)
            .only("pk", "order_number", "status", "pg_data", "created", "modified", "paid_at")
            .order_by("-created", "-pk")[: checkout_forms.KEPT]
        )
        if not candidates:
            return
        stale = next((order for order in candidates if token is not None and checkout_forms.is_stale(token, order)), None)
        if stale is not None:
            raise OperationRefused(_("This was paid already. Nothing more was charged."), code="ALREADY_PAID", order=stale)
        if self.request.POST.get(checkout_forms.ANOTHER_FIELD) != "1":
            raise OperationRefused(_("You have paid for this already."), code="PAID_BEFORE", order=candidates[0])

    def paid_before(self, error: OperationRefused):
        """The buyer has paid for this already and the form did not say "another one": ask (``checkout_again_template_name``).

        The page names the paid order and posts the same form again with
        ``pgpay_another=1``; nothing was reserved.
        """
        fields = [
            (name, value)
            for name, values in self.request.POST.lists()
            if name not in ("csrfmiddlewaretoken", checkout_forms.ANOTHER_FIELD)
            for value in values
        ]
        context = self.get_context_data(
            paid_order=error.order, fields=fields, another_field=checkout_forms.ANOTHER_FIELD, action=self.request.get_full_path()
        )
        return render(self.request, self.checkout_again_template_name, context)

    def already_paid(self, error: OperationRefused):
        """The start form was posted again after its order was paid: that order, never a second one.

        Redirects to the order's ``get_absolute_url()`` with the message, when the
        model has one and the buyer is logged in (an order page is usually theirs
        only); else ``django_pgpay/error.html`` with status 409.
        """
        order = error.order
        if hasattr(order, "get_absolute_url") and self.request.user.is_authenticated:
            messages.info(self.request, error.user_message, fail_silently=True)
            return HttpResponseRedirect(order.get_absolute_url())
        return render(self.request, "django_pgpay/error.html", self.get_context_data(error=error, order=order), status=409)

    #: URL names of the return and fail views the PG sends the buyer to (the shop's own, if it
    #: mounts a :class:`ConfirmMixin` of its own); they take the ``alias`` argument.
    return_url_name = "django_pgpay:return"
    fail_url_name = "django_pgpay:fail"

    def get_checkout_urls(self, order) -> CheckoutUrls:
        """Absolute return, fail and webhook URLs of ``order``'s gateway.

        The return and fail URLs carry the order's buyer token
        (:func:`~django_pgpay.permissions.buyer_token`): the browser that
        comes back with it may have the payment confirmed, even without the
        buyer's session (a payment app returning in another browser). Set
        :attr:`return_url_name` / :attr:`fail_url_name` for views of the
        shop's own; an override of this method should build on
        :func:`checkout_urls` (a return URL without the token is logged).
        """
        return checkout_urls(self.request, order, return_url_name=self.return_url_name, fail_url_name=self.fail_url_name)

    def checkout_response(self, order, checkout):
        """Redirect to a hosted page, or render the payment window."""
        if checkout.kind == "redirect":
            return HttpResponseRedirect(checkout.redirect_url)
        context = self.get_context_data(order=order, checkout=checkout)
        return render(self.request, self.template_name, context)

    def sold_out(self, error: PgPayError):
        context = self.get_context_data(error=error)
        return render(self.request, self.sold_out_template_name, context, status=409)

    def get(self, request, *args, **kwargs):
        if not request.user.is_authenticated and not self.allow_anonymous:
            return redirect_to_login(request.get_full_path())
        return render(request, self.start_template_name, self.get_context_data(checkout_action=checkout_forms.action(request)))

    def post(self, request, *args, **kwargs):
        response = self.checkout(request)
        # The payment window is made for this order at this moment: the back button after paying
        # must not show it again from the cache, ready to pay an order that is paid already.
        add_never_cache_headers(response)
        return response

    def checkout(self, request):
        """The POST's work: take the place, ask the PG for the window, answer with it (or why not)."""
        if not request.user.is_authenticated and not self.allow_anonymous:
            return redirect_to_login(request.get_full_path())
        try:
            order, _created = self.get_or_create_order()
        except SoldOut as exc:
            return self.sold_out(exc)
        except OperationRefused as exc:
            if exc.code == "PAID_BEFORE":
                return self.paid_before(exc)
            if exc.code != "ALREADY_PAID":
                raise
            return self.already_paid(exc)
        except PgPayError as exc:  # the PG of an order being given up could not close its checkout (nothing changed)
            return render(request, "django_pgpay/error.html", self.get_context_data(error=exc), status=_status(exc))
        gateway = order.get_gateway()
        urls = self.get_checkout_urls(order)
        if f"{permissions.BUYER_TOKEN_PARAM}=" not in urls.success_url:
            logger.warning(
                "%s.get_checkout_urls(): the return URL has no buyer token (%s): a buyer who comes back without "
                "their session cannot have the payment confirmed; build on django_pgpay.views.checkout_urls()",
                type(self).__name__,
                permissions.BUYER_TOKEN_PARAM,
            )
        try:
            checkout = gateway.checkout(order.snapshot(at_checkout=True), urls)
        except PgPayError as exc:
            return render(request, "django_pgpay/error.html", self.get_context_data(error=exc), status=_status(exc))
        if checkout.pg_data:
            self._remember(order, gateway, checkout.pg_data)
            if order.status in (OrderStatus.EXPIRED, OrderStatus.FAILED):
                return self._given_up_meanwhile(request, order, gateway)
            if order.status != OrderStatus.READY:  # paid meanwhile (its webhook came first): that order
                self._close_checkout(order, gateway)  # the window just made, another tab's too
                return self.already_paid(
                    OperationRefused(_("This was paid already. Nothing more was charged."), code="ALREADY_PAID", order=order)
                )
        return self.checkout_response(order, checkout)

    @staticmethod
    def _close_checkout(order, gateway) -> None:
        """Close the windows of an order that can no longer be paid (given up, or paid meanwhile)."""
        try:
            gateway.abandon(order.snapshot())
        except OperationInProgress:  # a window completed (the payment that paid it): nothing more to close
            pass
        except PgPayError as exc:  # unreachable: the return, the webhook and reconciliation settle what comes
            logger.warning("order %s is no longer payable; closing its checkout: %s", order.order_number, exc)

    def _given_up_meanwhile(self, request, order, gateway):
        """The order expired while its window was being made (another tab switched PG): close that window too."""
        self._close_checkout(order, gateway)
        error = OperationRefused(_("This order was given up meanwhile (another payment was started). Please start again."), code="GIVEN_UP")
        return render(request, "django_pgpay/error.html", self.get_context_data(error=error), status=_status(error))

    @staticmethod
    def _remember(order, gateway, pg_data) -> None:
        """Merge the gateway's checkout data (e.g. a session id) into the order, under its lock.

        Merged by the gateway (:meth:`~django_pgpay.gateways.base.BaseGateway.merge_checkout_data`)
        into what the order holds now: two checkouts of one order at once (a second tab) each
        made a Session, and both must stay known.
        """
        with transaction.atomic(using=router.db_for_write(type(order))):
            locked = type(order)._base_manager.select_for_update().get(pk=order.pk)
            locked.pg_data = gateway.merge_checkout_data(locked.pg_data or {}, dict(pg_data))
            order.status = locked.status
            locked.save(update_fields=["pg_data"])
            order.pg_data = locked.pg_data


# --- the PG's return URL --------------------------------------------------------------


class ConfirmMixin(GatewayMixin):
    """The URL a PG sends the buyer back to after the payment window.

    Only the order's buyer may have the shop call the PG about a READY order:
    the request carries the buyer token the checkout put on this URL, or comes
    from the buyer's logged-in session (:func:`~django_pgpay.permissions.may_pay`).
    Anyone else gets a 403 and nothing is written or sent. The ids and amount
    in the query are then checked against the stored order before any PG call
    (a tampered amount is refused with 400 and no PG call), and the payment is
    confirmed. A reload after success shows success again. Only the buyer (or
    staff allowed to see orders) sees the order's details on the result page.

    Override :meth:`get_success_url` to redirect to the shop's own page after
    success, or the templates to restyle the pages.
    """

    success_template_name = "django_pgpay/return_success.html"
    failure_template_name = "django_pgpay/return_failure.html"
    pending_template_name = "django_pgpay/return_pending.html"
    #: True for the PG's fail URL.
    failed = False

    def get_success_url(self, order) -> str | None:
        """Where to send the buyer after success (None: render the success page)."""
        return None

    def page(self, template: str, *, order=None, status: int = 200, **context):
        visible = order is not None and permissions.may_view(self.request.user, order)
        return render(
            self.request,
            template,
            {"order": order if visible else None, "order_number": getattr(order, "order_number", ""), **context},
            status=status,
        )

    def named_order(self, order_number: str, gateway):
        """The order with this number paying through ``gateway``, or None (never a 404: a fail page is a page)."""
        try:
            return find_order(order_number, gateway=gateway.alias, models=self.order_models)
        except PgPayError:  # the number is in two order models: show none of them
            return None

    def get_retry_url(self, order) -> str | None:
        """Where the buyer can pay ``order`` again (the shop's checkout page for it), or None.

        The failure page links to it ("Try again") only for the order's buyer
        (:func:`~django_pgpay.permissions.may_pay`: not staff looking at it), while it is still ``READY``, not past its
        ``expires_at`` and has no payment in flight (a confirm whose answer is
        pending could still be approved). None (the default): no such link.
        """
        return None

    def failure(self, message, *, order=None, status: int = 400, code: str = "", detail: str = "", kind: str = ""):
        """The failure page. ``kind``: :func:`fail_kind` of a fail URL's code ("closed": no error code is shown)."""
        retry_url = None
        # A READY order still within its hold (reconciliation expires one past it later): the page says until when.
        held = order is not None and order.status == OrderStatus.READY and (order.expires_at is None or order.expires_at > timezone.now())
        if (
            held
            and code != "ALREADY_PAID"
            and permissions.may_pay(self.request, order)
            and not ledger.open_rows(order, TransactionKind.CONFIRM).exists()
        ):
            retry_url = self.get_retry_url(order)
        return self.page(
            self.failure_template_name,
            order=order,
            status=status,
            message=message,
            code=code,
            detail=detail,
            kind=kind,
            retry_url=retry_url,
            held=held,
        )

    def get(self, request, *args, **kwargs):
        gateway = self.get_gateway()
        if inputs.has_forbidden_text(request.GET):
            return self.failure(_("The payment provider's return could not be read."), status=400, code="INVALID_CHARACTERS")
        try:
            params = gateway.parse_return(request.GET)
        except PgPayError as exc:
            return self.failure(_("The payment provider's return could not be read."), status=400, code=exc.code)
        if self.failed or params.error_code:
            code = params.error_code if _FAIL_CODE.fullmatch(params.error_code) else ""
            kind = fail_kind(code, params.error_message)
            message = FAIL_KIND_MESSAGES[kind]
            # The order it names, so that its buyer reads whether it is still held (page() shows it
            # only to whoever may view it); nothing is written and no PG is called.
            order = self.named_order(params.order_number, gateway)
            if (
                order is not None
                and order.status in (OrderStatus.PAID, OrderStatus.PARTIAL_CANCELED)
                and permissions.may_pay(request, order)
            ):
                # A payment window left open in another tab, its order paid meanwhile: the PG refuses
                # (DUPLICATED_ORDER_ID, F0004). "Not completed" would send the buyer to pay again.
                return self.failure(_("This was paid already. Nothing more was charged."), status=200, code="ALREADY_PAID", order=order)
            return self.failure(message, status=200, code=code, order=order, kind=kind)
        order = self.find_order(params.order_number, gateway=gateway.alias)
        if not permissions.may_pay(request, order):
            # Not the buyer's browser: the shop calls no PG and writes nothing for it.
            return self.failure(
                _("This payment link is not valid here. Please open it in the browser you paid with."),
                status=403,
                code="NOT_THE_BUYER",
            )
        # Resolve the (lazy) user now, not inside the order's row lock.
        actor = request.user if request.user.is_authenticated else None
        try:
            outcome = payments.confirm(
                order,
                payment_id=params.payment_id,
                amount=params.amount,
                source=TransactionSource.CUSTOMER,
                actor=actor,
            )
        except AmountMismatch:
            if order.status == OrderStatus.FAILED:
                # The PG took another amount (no confirm call, as PortOne): it is being given back.
                message = _("The amount of the payment does not match the order. The payment was not accepted and is being cancelled.")
            else:
                message = _("The amount of the payment does not match the order. Nothing was charged.")
            return self.failure(message, order=order, status=400, code=AmountMismatch.code)
        except PaymentDeclined as exc:
            # The PG's own words (often Korean only) come second, under a sentence in the page's language.
            order.refresh_from_db()
            return self.failure(_("The payment was declined."), order=order, status=402, code=exc.code, detail=exc.user_message)
        except OperationInProgress:
            return self.page(self.pending_template_name, order=order, status=202)
        except GatewayUnavailable as exc:
            return self.failure(exc.user_message, order=order, status=503, code=exc.code)
        except PgPayError as exc:
            return self.failure(exc.user_message, order=order, status=_status(exc), code=exc.code)
        if outcome.compensated:
            # A second payment of an order that was paid already: it is given back, not taken.
            return self.failure(
                _("This order was already paid. This second payment was not accepted and is being refunded."),
                order=outcome.order,
                status=409,
                code="SECOND_PAYMENT",
            )
        if outcome.pending:
            return self.page(self.pending_template_name, order=outcome.order, status=202)
        url = self.get_success_url(outcome.order)
        if url:
            return HttpResponseRedirect(url)
        return self.page(self.success_template_name, order=outcome.order, replayed=outcome.replayed)


class AttemptView(GatewayMixin, View):
    """``<alias>/attempt/``: the buyer's payment window reports a payment id as soon as it knows it.

    POST (a form, as ``navigator.sendBeacon`` sends it) with ``order_id``,
    ``payment_id`` and the checkout's buyer token ``pgpay_t``. The id is only
    remembered in the order's ``pg_data`` (at most
    :data:`~django_pgpay.gateways.base.MAX_REPORTED_ATTEMPTS` of them); no PG
    is called here. Reconciliation looks each one up before it expires the
    order, so a payment whose browser never came back and whose webhook was
    lost is still found (Bootpay has no lookup by order number). Answers 204;
    400 for a malformed report, 403 without the buyer's token or session.
    """

    http_method_names = ["post"]

    @method_decorator(csrf_exempt)
    def dispatch(self, request, *args, **kwargs):
        # A beacon carries no CSRF token; the buyer token authorises it, and it only adds an id to look up.
        return super().dispatch(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        from .gateways.base import MAX_REPORTED_ATTEMPTS, PG_DATA_ATTEMPTS

        gateway = self.get_gateway()
        payment_id = request.POST.get("payment_id") or ""
        number = request.POST.get("order_id") or ""
        if inputs.has_forbidden_text(request.POST) or not payment_id or len(payment_id) > 200 or not payment_id.isprintable():
            return HttpResponse(status=400)
        order = self.find_order(number, gateway=gateway.alias)
        if not permissions.may_pay(request, order):
            return HttpResponse(status=403)
        with transaction.atomic(using=router.db_for_write(type(order))):
            locked = type(order)._base_manager.select_for_update().get(pk=order.pk)
            known = [str(p) for p in (locked.pg_data or {}).get(PG_DATA_ATTEMPTS) or ()]
            if payment_id not in known and len(known) < MAX_REPORTED_ATTEMPTS:
                locked.pg_data = {**(locked.pg_data or {}), PG_DATA_ATTEMPTS: [*known, payment_id]}
                locked.save(update_fields=["pg_data"])
        return HttpResponse(status=204)


class ReturnView(ConfirmMixin, View):
    """``<alias>/return/`` (success URL) and, with ``failed=True``, ``<alias>/fail/``."""

    http_method_names = ["get"]


# --- cancel ----------------------------------------------------------------------------


class CancelRequestError(PgPayError):
    """A cancel form that cannot be read: nothing is cancelled."""

    http_status = 400
    code = "INVALID_CANCEL_REQUEST"


class CancelMixin(GatewayMixin):
    """Cancel all or part of an order's payment: POST, CSRF-checked, in two steps (a GET leads back to the order).

    Who may: the order's buyer, and staff with the order model's refund
    permission (:mod:`django_pgpay.permissions`); for anyone else the order is
    a 404, as is an unknown one.

    Form fields (``application/x-www-form-urlencoded`` or ``multipart/form-data``;
    anything else is a 415):

    * ``amount``: the amount to give back, as typed (``30000``, ``30,000``); or
    * ``full=1``: everything that is left. Cancelling everything is always this
      explicit choice: an empty or unreadable amount is a 400, never "all".
    * ``reason`` (optional), ``token`` (the form's idempotency token, so a double
      submit refunds once; the same token with another amount is refused) and
      ``next`` (where to go afterwards; same host only).
    * ``confirm=1``: the second step. Without it nothing changes: the
      confirmation page (``confirm_template_name``) states the amount and the
      balance after, and posts the same fields again with ``confirm=1``.

    ``{% pgpay_cancel_form order %}`` renders the first step. A refused cancel
    (not cancellable, bad amount, more than the balance) renders
    ``refused_template_name`` with a 4xx status and changes nothing; override
    :meth:`refused` to redirect with a message instead.
    """

    http_method_names = ["get", "post"]
    refused_template_name = "django_pgpay/cancel_refused.html"
    confirm_template_name = "django_pgpay/cancel_confirm.html"
    #: Where to go after a cancel when the form gives no ``next``.
    success_url = None
    #: Content types a cancel form may come in.
    form_content_types = ("application/x-www-form-urlencoded", "multipart/form-data")

    def get_order(self):
        order = self.find_order(self.kwargs["order_number"])
        if not permissions.may_refund(self.request.user, order):
            raise Http404("no such order")
        return order

    def get_reason(self, order) -> str:
        reason = inputs.clean_text(self.request.POST.get("reason") or "", field="reason", max_length=200)
        if reason:
            return reason
        if not permissions.is_buyer(self.request.user, order):
            return str(_("Cancelled by staff"))
        return str(_("Cancelled by the customer"))

    def get_amount(self, order):
        """:data:`payments.FULL` for ``full=1``, else the typed ``amount``; a :class:`CancelRequestError` otherwise."""
        if len(self.request.POST.getlist("full")) > 1 or len(self.request.POST.getlist("amount")) > 1:
            # Two amounts (amount=1&amount=2): which one the buyer meant is not for the shop to guess
            # (QueryDict.get takes the last one silently).
            raise CancelRequestError(_("Give one amount to cancel."), code="AMBIGUOUS_AMOUNT")
        full = self.request.POST.get("full")
        typed = self.request.POST.get("amount")
        if full is not None and full not in ("1", "true", "on"):
            raise CancelRequestError(_("The form could not be read."), code="INVALID_FULL")
        if full is not None and typed not in (None, ""):
            raise CancelRequestError(_("Give an amount or cancel everything, not both."), code="AMBIGUOUS_AMOUNT")
        if full is not None:
            return payments.FULL
        if typed is None or not typed.strip(" \t\r\n"):
            raise CancelRequestError(_("Enter the amount to cancel."), code="MISSING_AMOUNT")
        if typed.strip(" \t\r\n").startswith(("-", "\u2212")):
            raise CancelRequestError(_("The amount to cancel must be positive."), code="INVALID_AMOUNT")
        try:
            return parse_typed_amount(typed, order.currency)
        except WholeUnitsOnly:
            raise CancelRequestError(
                _("Type the amount in whole %(currency)s, without a decimal point (for example 1000 or 1,000).")
                % {"currency": order.currency},
                code="INVALID_AMOUNT",
            ) from None
        except MoneyError:
            raise CancelRequestError(
                _("The amount to cancel is not a number of %(currency)s.") % {"currency": order.currency}, code="INVALID_AMOUNT"
            ) from None

    def get_success_url(self, order) -> str:
        candidate = self.request.POST.get("next") or self.success_url or self.request.META.get("HTTP_REFERER") or "/"
        if url_has_allowed_host_and_scheme(str(candidate), allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()):
            return str(candidate)
        return "/"

    def refused(self, order, error: PgPayError):
        # The order as the refusal found it (read under its lock), when the error carries it.
        order = getattr(error, "order", None) or order
        context = {"order": order, "message": error.user_message, "code": error.code, "next": self.get_success_url(order)}
        return render(self.request, self.refused_template_name, context, status=_status(error))

    def confirmation(self, order, amount, reason: str, *, account_form=None, status: int = 200):
        """The second step's page: what will be given back, and what is left after.

        For an order paid into a virtual account it also asks for the buyer's bank
        account the money goes back to (``account_form``, bound again with its
        errors when what was typed is not an account).
        """
        given = order.balance if amount is payments.FULL else amount
        if account_form is None and refund_accounts.needed(order):
            account_form = refund_accounts.RefundAccountForm()
        context = {
            "order": order,
            "full": amount is payments.FULL,
            "amount": quantize(given, order.currency),
            "amount_display": labels.money(given, order.currency),
            "balance_after_display": labels.money(max(order.balance - given, 0), order.currency),
            "withdraws_account": order.status == OrderStatus.WAITING_FOR_DEPOSIT,
            "reason": self.request.POST.get("reason", "")[:200],
            "token": self.request.POST.get("token", ""),
            "next": self.get_success_url(order),
            # The second step posts where the first came: this view, whatever URL it is mounted at.
            "action": self.request.path,
            "account_form": account_form,
        }
        return render(self.request, self.confirm_template_name, context, status=status)

    def get(self, request, *args, **kwargs):
        """Back to the order: a GET changes nothing.

        The cancel URL is reached by GET after a login (the form was posted
        with the session expired) or a language switch on the confirmation
        page; it used to be the browser's blank 405. The order's
        ``get_absolute_url()`` when it has one, else :attr:`success_url` or
        ``/``; someone else's order is a 404, as for a POST.
        """
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        order = self.get_order()
        url = order.get_absolute_url() if hasattr(order, "get_absolute_url") else (self.success_url or "/")
        return HttpResponseRedirect(url)

    def post(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if request.content_type not in self.form_content_types:
            return HttpResponse(_("Send the cancel form as a form."), status=415, content_type="text/plain; charset=utf-8")
        order = self.get_order()
        try:
            if inputs.has_forbidden_text(request.POST):
                raise CancelRequestError(_("The form contains characters that cannot be stored."), code="INVALID_CHARACTERS")
            amount = self.get_amount(order)
            reason = self.get_reason(order)
            token = (request.POST.get("token") or "").strip() or None
            source = TransactionSource.CUSTOMER if permissions.is_buyer(request.user, order) else TransactionSource.STAFF
            if request.POST.get("confirm") != "1":
                payments.check_cancel(order, amount, source=source)
                return self.confirmation(order, amount, reason)
            refund_account = None
            if refund_accounts.needed(order):
                account_form = refund_accounts.RefundAccountForm(request.POST)
                if not account_form.is_valid():
                    return self.confirmation(order, amount, reason, account_form=account_form, status=400)
                refund_account = account_form.account(order.get_gateway())
            outcome = payments.cancel(
                order, amount, reason=reason, source=source, actor=request.user, idempotency_key=token, refund_account=refund_account
            )
        except inputs.InvalidInput as exc:
            return self.refused(order, CancelRequestError(str(exc), code="INVALID_CHARACTERS"))
        except PgPayError as exc:
            return self.refused(order, exc)
        if outcome.pending:
            messages.info(request, _("The cancellation is being processed. Please check again in a moment."), fail_silently=True)
        elif outcome.replayed:
            messages.info(request, _("This cancellation was already processed; nothing more was cancelled."), fail_silently=True)
        elif outcome.order.status == OrderStatus.EXPIRED:
            messages.success(request, _("The virtual account was closed; nothing was paid."), fail_silently=True)
        elif outcome.order.status == OrderStatus.CANCELED:
            messages.success(request, _("The payment was cancelled."), fail_silently=True)
        else:
            messages.success(request, _("Part of the payment was cancelled."), fail_silently=True)
        return HttpResponseRedirect(self.get_success_url(order))


class CancelView(CancelMixin, View):
    """``cancel/<order_number>/``: see :class:`CancelMixin`."""


# --- invoices ---------------------------------------------------------------------------


class InvoiceMixin(GatewayMixin):
    """The PDF invoice of one paid order, for the order's buyer or staff with the view permission.

    GET only. Anonymous users are sent to the login page; an order of another
    user, or an unknown number, is a 404 (whether it exists is not revealed).
    The owner of an order that was never paid (awaiting payment, failed or
    expired) gets a 409 page saying there is no invoice yet. A cancelled order
    still has its invoice (it shows the cancelled amount).

    Override :meth:`get_order` for another ownership rule, or
    :meth:`get_filename`.
    """

    http_method_names = ["get", "head"]
    #: Send the PDF as a download (``attachment``) rather than inline.
    as_attachment = True

    def get_order(self):
        order = self.find_order(self.kwargs["order_number"])
        if not permissions.may_view(self.request.user, order):
            raise Http404("no such order")
        return order

    def get_filename(self, order) -> str:
        from .invoices import invoice_filename

        return invoice_filename(order)

    def not_paid(self, order):
        error = OperationRefused(labels.no_invoice(order), code="NOT_PAID")
        return render(self.request, "django_pgpay/error.html", {"order": order, "error": error}, status=409)

    def get(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        order = self.get_order()
        if not order.is_paid:
            return self.not_paid(order)
        from .invoices import invoice_response

        try:
            response = invoice_response([order], filename=self.get_filename(order))
        except ConfigurationError as exc:
            logger.error("invoice %s: %s", order.order_number, exc)
            error = PgPayError(_("The invoice cannot be made right now. Please try again later."), code="INVOICE_UNAVAILABLE")
            return render(request, "django_pgpay/error.html", {"order": order, "error": error}, status=503)
        if not self.as_attachment:
            response["Content-Disposition"] = response["Content-Disposition"].replace("attachment", "inline", 1)
        response["Cache-Control"] = "private, no-store"
        return response


class InvoiceView(InvoiceMixin, View):
    """``invoice/<app_label.model>/<order_number>/`` and ``invoice/<order_number>/``: see :class:`InvoiceMixin`.

    With the model in the URL (``{% pgpay_invoice_url order %}``) the order is
    looked for in that model only; a label that is not one of the view's order
    models is a 404, like someone else's order.
    """


# --- webhooks ----------------------------------------------------------------------------


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class WebhookView(GatewayMixin, View):
    """``<alias>/webhook/``: one URL per gateway alias, registered in the PG's dashboard.

    CSRF-exempt (the PG has no token) and outside ``ATOMIC_REQUESTS`` (the
    delivery log must be kept even when applying fails). Answers the gateway's
    ``webhook_ack`` when the delivery is applied or a duplicate, 400 when it is
    malformed or cannot be verified, 403 when it comes from an address the
    gateway's allowlist refuses, and 503 when it could not be processed now
    (the PG delivers it again). See :mod:`django_pgpay.webhooks`.
    """

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        gateway = self.get_gateway()
        if tasks.queued(tasks.process_delivery):
            receipt = self.enqueue(gateway, request)
        else:
            receipt = webhooks.receive(
                gateway,
                headers=request.headers,
                body=request.body,
                remote_addr=request.META.get("REMOTE_ADDR"),
                models=self.order_models,
            )
        if receipt.accepted:
            status, content_type, body = gateway.webhook_ack
            return HttpResponse(body, status=status, content_type=content_type)
        return HttpResponse(receipt.message if settings.DEBUG else "", status=receipt.status, content_type="text/plain")

    def enqueue(self, gateway, request) -> webhooks.Receipt:
        """The queued path: store and screen the delivery (:func:`~django_pgpay.webhooks.accept`), hand it to a worker."""
        receipt = webhooks.accept(gateway, headers=request.headers, body=request.body, remote_addr=request.META.get("REMOTE_ADDR"))
        if not receipt.accepted:
            return receipt
        models = [m if isinstance(m, str) else m._meta.label for m in self.order_models] if self.order_models else None
        try:
            tasks.enqueue(tasks.process_delivery, receipt.event.pk, models)
        except Exception as exc:  # noqa: BLE001 - the queue is down: the PG delivers again, pgpay_reconcile retries
            logger.exception("webhook %s #%s could not be enqueued", gateway.alias, receipt.event.pk)
            return webhooks.fail(receipt.event, f"could not be enqueued: {type(exc).__name__}: {exc}")
        return receipt


__all__ = [
    "AttemptView",
    "CancelMixin",
    "CancelView",
    "CheckoutMixin",
    "ConfirmMixin",
    "GatewayMixin",
    "InvoiceMixin",
    "InvoiceView",
    "ReturnView",
    "WebhookView",
    "checkout_urls",
]
