"""The abstract models a shop subclasses, and the webhook delivery log.

A shop writes::

    class Booking(AbstractOrder):
        seat = models.ForeignKey(Seat, on_delete=models.PROTECT)

    class BookingTransaction(AbstractTransaction):
        order = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="transactions")

and overrides the hooks it needs (``reserve``/``release`` for stock,
``get_line_items`` for invoices and Stripe). Statuses change only through
:mod:`django_pgpay.payments`; never assign ``status`` yourself.
"""

from __future__ import annotations

import secrets
import string
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from model_utils.fields import MonitorField
from model_utils.models import TimeStampedModel

from . import conf
from .gateways.results import LineItem, OrderSnapshot
from .money import quantize
from .status import (
    CANCELABLE_STATUSES,
    PAID_STATUSES,
    DeliveryStatus,
    OrderStatus,
    TransactionKind,
    TransactionSource,
    TransactionStatus,
)

#: Order numbers every PG accepts: Toss wants 6-64 of these characters,
#: PortOne at most 40, Bootpay and Stripe anything shorter.
ORDER_NUMBER_RE = r"^[A-Za-z0-9_-]{6,64}$"
validate_order_number = RegexValidator(ORDER_NUMBER_RE, _("Order numbers are 6 to 64 letters, digits, '-' or '_'."), "invalid_order_number")

_ALPHABET = string.ascii_letters + string.digits


def new_order_number() -> str:
    """A fresh order number: ``PREFIX`` + ``YYMMDD`` + 14 random letters/digits (<= 40 chars)."""
    prefix = str(conf.setting("ORDER_NUMBER_PREFIX") or "")[:16]
    stamp = timezone.now().strftime("%y%m%d")
    return f"{prefix}{stamp}{''.join(secrets.choice(_ALPHABET) for _ in range(14))}"


def default_currency() -> str:
    """``PGPAY["CURRENCY"]`` at the time the order is created."""
    return str(conf.setting("CURRENCY")).upper()


AMOUNT_FIELD = {"max_digits": 19, "decimal_places": 3}


class AbstractOrder(TimeStampedModel):
    """An order a buyer pays through one PG: the amount, where it stands, and the PG's ids.

    Subclasses add what they sell (a seat, cart lines) and may override:

    * :meth:`reserve` / :meth:`release`: take and give back stock. ``reserve``
      runs in the transaction that creates the order and returns False when
      sold out; ``release`` runs exactly once, in the transaction that moves the
      order to CANCELED (in full), EXPIRED or FAILED.
    * :meth:`on_paid`, :meth:`on_canceled`, :meth:`on_expired`,
      :meth:`on_failed`: run inside the status change's transaction, with the
      order row locked. The defaults call :meth:`release` where stock comes back.
    * :meth:`get_line_items`, :meth:`get_order_name`: what is sold, for the PG
      and the invoice.
    * :attr:`buyer_may_cancel_part`: True where a buyer may give back part of a
      payment (by default they cancel in full).
    """

    Status = OrderStatus

    #: Whether the buyer may give back part of the payment (an amount typed in the cancel
    #: form). False by default: the buyer's partial cancel is refused (``FULL_CANCEL_ONLY``)
    #: whatever the form sent, because stock comes back only with a full cancel (a buyer of a
    #: booking refunded all but 1 won would keep the place). Set it True for an order whose
    #: buyer may give back part (a cart whose shop offers it). Staff with the refund
    #: permission may always give back part.
    buyer_may_cancel_part = False

    order_number = models.CharField(
        _("order number"),
        max_length=64,
        unique=True,
        default=new_order_number,
        validators=[validate_order_number],
        help_text=_("Sent to the PG as its order id (orderId, merchant_uid, order_id)."),
    )
    order_name = models.CharField(_("order name"), max_length=200, blank=True)
    amount = models.DecimalField(_("amount"), validators=[MinValueValidator(Decimal(0))], **AMOUNT_FIELD)
    currency = models.CharField(_("currency"), max_length=3, default=default_currency)
    canceled_amount = models.DecimalField(_("cancelled amount"), default=Decimal(0), editable=False, **AMOUNT_FIELD)
    status = models.CharField(
        _("status"), max_length=24, choices=OrderStatus.choices, default=OrderStatus.READY, db_index=True, editable=False
    )
    paid_at = MonitorField(_("paid at"), monitor="status", when=[OrderStatus.PAID], null=True, blank=True, editable=False)
    canceled_at = MonitorField(
        _("cancelled at"),
        monitor="status",
        when=[OrderStatus.PARTIAL_CANCELED, OrderStatus.CANCELED],
        null=True,
        blank=True,
        editable=False,
    )
    expires_at = models.DateTimeField(
        _("expires at"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("An unpaid order expires after this (PGPAY READY_TIMEOUT, or a virtual account's deadline)."),
    )
    gateway = models.CharField(_("gateway"), max_length=32, blank=True, db_index=True)
    pg_payment_id = models.CharField(
        _("PG payment id"),
        max_length=200,
        blank=True,
        db_index=True,
        help_text=_("paymentKey (Toss), imp_uid (PortOne), receipt_id (Bootpay) or payment intent (Stripe)."),
    )
    pg_data = models.JSONField(_("PG data"), default=dict, blank=True, editable=False)
    method = models.CharField(_("payment method"), max_length=64, blank=True)
    receipt_url = models.URLField(_("receipt URL"), max_length=500, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("buyer account"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="%(app_label)s_%(class)s_set",
    )
    buyer_name = models.CharField(_("buyer name"), max_length=100, blank=True)
    buyer_email = models.EmailField(_("buyer email"), blank=True)
    buyer_phone = models.CharField(_("buyer phone"), max_length=32, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="%(app_label)s_%(class)s_status_valid"),
            models.CheckConstraint(
                condition=Q(amount__gte=0) & Q(canceled_amount__gte=0) & Q(canceled_amount__lte=F("amount")),
                name="%(app_label)s_%(class)s_canceled_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return self.order_number

    def save(self, *args, **kwargs):
        if self._state.adding:
            if not self.gateway:
                self.gateway = conf.default_gateway_alias()
            if self.expires_at is None and self.status == OrderStatus.READY:
                self.expires_at = timezone.now() + conf.ready_timeout()
            if not self.currency:
                self.currency = default_currency()
            self.currency = self.currency.upper()
        super().save(*args, **kwargs)

    # --- derived values -------------------------------------------------------

    @property
    def balance(self) -> Decimal:
        """What is still paid and not given back."""
        return self.amount - self.canceled_amount

    @property
    def is_paid(self) -> bool:
        """The PG confirmed the money at some point (even if all was given back since)."""
        return self.status in PAID_STATUSES

    @property
    def is_cancelable(self) -> bool:
        """A cancel may be asked for (there is something left to give back)."""
        return self.status in CANCELABLE_STATUSES and self.balance > 0

    @property
    def buyer_may_cancel_now(self) -> bool:
        """The buyer's own cancel would be taken now: something is left to give back, and the buyer's deadline has not passed.

        For the shop's pages (show the cancel form or not); staff with the
        refund permission may cancel after the deadline
        (:meth:`get_buyer_cancel_deadline`).
        """
        deadline = self.get_buyer_cancel_deadline()
        return self.is_cancelable and (deadline is None or timezone.now() < deadline)

    @property
    def amount_display(self) -> str:
        return f"{quantize(self.amount, self.currency):,}"

    # --- what a shop overrides --------------------------------------------------

    def get_order_name(self) -> str:
        """Shown by the PG and on invoices; defaults to ``order_name`` or the number."""
        return self.order_name or str(_("Order %(number)s") % {"number": self.order_number})

    def get_line_items(self) -> list[LineItem]:
        """What is sold; the unit amounts times quantities must add up to ``amount``."""
        return [LineItem(name=self.get_order_name(), unit_amount=self.amount, quantity=1)]

    def get_buyer_cancel_deadline(self):
        """Until when the buyer may cancel (an aware datetime), or None: any time (the default).

        A booking's deposit, for instance, is given back if the buyer cancels
        before the visit, not after it: return the seat's time. Past it, a
        buyer's cancel (``source`` CUSTOMER) is refused with
        ``BUYER_DEADLINE_PASSED`` and nothing changes; staff with the refund
        permission may still cancel. :attr:`buyer_may_cancel_now` tells the
        shop's pages whether to show the form.
        """
        return None

    def reserve(self) -> bool:
        """Take stock for this order; return False when sold out. Runs in the creating transaction."""
        return True

    def get_deposit_deadline(self):
        """The latest time a virtual account's deposit may pay for this order (aware), or None.

        None (the default) keeps the PG's own deadline. When a PG issues an
        account due later than this (or names no deadline), the order keeps
        this time as its ``expires_at``: the buyer is shown it, and
        :func:`~django_pgpay.payments.reconcile` withdraws the account at the PG
        and expires the order once it has passed, so that a booking is not paid
        after the visit. At checkout the gateway also asks the PG for an account
        due no later (Toss ``virtualAccount.validHours``, PortOne V1
        ``vbank_due``, PortOne V2 ``virtualAccount.accountExpiry``). Called under the order's row lock, and at checkout:
        read, never write.
        """
        return None

    def release(self) -> None:
        """Give the stock back. Called once, when the order is cancelled in full, expires or fails."""

    def on_paid(self) -> None:
        """The order became PAID (runs in the same transaction, row locked)."""

    def on_canceled(self, amount: Decimal) -> None:
        """``amount`` was given back; the default releases stock once nothing is left."""
        if self.status == OrderStatus.CANCELED:
            self.release()

    def on_expired(self) -> None:
        """The order expired unpaid; the default releases its stock."""
        self.release()

    def on_failed(self) -> None:
        """The payment failed or was refused; the default releases the stock."""
        self.release()

    def is_owned_by(self, user) -> bool:
        """Is ``user`` this order's buyer? Staff are not owners: they act through permissions
        (see :mod:`django_pgpay.permissions`)."""
        from .permissions import is_buyer

        return is_buyer(user, self)

    @classmethod
    def get_refund_permission(cls) -> str:
        """The permission staff need to cancel or refund orders of this model.

        The model's *change* permission by default (statuses and amounts are
        read-only, so "change" means "may operate on orders"). Override it to
        name a permission of the shop's own, e.g. ``"shop.refund_booking"``
        declared in ``Meta.permissions``.
        """
        from .permissions import model_permission

        return model_permission(cls, "change")

    # --- plumbing ---------------------------------------------------------------

    @classmethod
    def get_transaction_model(cls):
        """The concrete :class:`AbstractTransaction` subclass whose ``order`` points here."""
        cached = cls.__dict__.get("_pgpay_transaction_model")
        if cached is not None:
            return cached
        for relation in cls._meta.related_objects:
            model = relation.related_model
            if isinstance(model, type) and issubclass(model, AbstractTransaction) and relation.field.name == "order":
                cls._pgpay_transaction_model = model
                return model
        from .exceptions import ConfigurationError

        raise ConfigurationError(
            f"{cls._meta.label} has no AbstractTransaction subclass with order = ForeignKey({cls.__name__}, related_name=...)."
        )

    def get_gateway(self):
        """The gateway instance this order pays through."""
        return conf.get_gateway(self.gateway or None)

    def snapshot(self, *, at_checkout: bool = False) -> OrderSnapshot:
        """What the gateway may know about this order; ``at_checkout`` adds the deposit deadline.

        The deadline (:meth:`get_deposit_deadline`, a naive time read in the
        current time zone) is read only when asked: a shop's may take a query.
        """
        deadline = self.get_deposit_deadline() if at_checkout else None
        if deadline is not None and timezone.is_naive(deadline):
            deadline = timezone.make_aware(deadline)
        return OrderSnapshot(
            order_number=self.order_number,
            amount=self.amount,
            currency=self.currency,
            order_name=self.get_order_name(),
            line_items=tuple(self.get_line_items()),
            canceled_amount=self.canceled_amount,
            payment_id=self.pg_payment_id,
            buyer_name=self.buyer_name,
            buyer_email=self.buyer_email,
            buyer_phone=self.buyer_phone,
            pg_data=dict(self.pg_data or {}),
            deposit_deadline=deadline,
        )


class AbstractTransaction(TimeStampedModel):
    """One ledger row: a money operation or an inbound PG event on one order.

    A row is written *before* a call that moves money, with the idempotency key
    that is sent, and updated with the PG's answer. Subclasses add
    ``order = models.ForeignKey(<their order>, related_name="transactions", ...)``.
    """

    Kind = TransactionKind
    Status = TransactionStatus
    Source = TransactionSource

    kind = models.CharField(_("kind"), max_length=16, choices=TransactionKind.choices)
    status = models.CharField(_("status"), max_length=16, choices=TransactionStatus.choices, default=TransactionStatus.PENDING)
    amount = models.DecimalField(_("amount"), **AMOUNT_FIELD)
    currency = models.CharField(_("currency"), max_length=3)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, unique=True)
    pg_payment_id = models.CharField(_("PG payment id"), max_length=200, blank=True)
    pg_transaction_id = models.CharField(
        _("PG transaction id"), max_length=200, blank=True, help_text=_("The PG's id of this cancel or event.")
    )
    response = models.JSONField(_("PG reply"), null=True, blank=True)
    error_code = models.CharField(_("error code"), max_length=100, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    source = models.CharField(_("requested by"), max_length=16, choices=TransactionSource.choices, default=TransactionSource.SYSTEM)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    webhook_event = models.ForeignKey(
        "django_pgpay.WebhookEvent",
        verbose_name=_("webhook delivery"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["created", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="%(app_label)s_%(class)s_amount_positive"),
            models.CheckConstraint(
                condition=Q(kind__in=TransactionKind.values) & Q(status__in=TransactionStatus.values),
                name="%(app_label)s_%(class)s_kind_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        """The PG's answer is not known yet (pending or unknown)."""
        return self.status in (TransactionStatus.PENDING, TransactionStatus.UNKNOWN)

    @property
    def needs_attention(self) -> bool:
        """Money the library could not give back by itself: a person must act."""
        return self.status == TransactionStatus.ATTENTION


class WebhookEvent(models.Model):
    """Every webhook delivery, as received, and what became of it.

    Kept whether or not it could be verified, so support can see what a PG
    sent (secrets the PG puts in a body, such as Toss's deposit ``secret``,
    are masked before it is stored). ``status`` says what became of it
    (:class:`~django_pgpay.status.DeliveryStatus`); ``processed`` is True once
    it needs nothing more (applied, a duplicate, or nothing to apply). A
    delivery that *failed* (the PG did not answer, applying raised) keeps
    ``error`` and is processed again by the PG's next delivery or by
    ``pgpay_reconcile``; a *refused* one (malformed, forged) never is.
    """

    Status = DeliveryStatus

    gateway = models.CharField(_("gateway"), max_length=32, db_index=True)
    event_id = models.CharField(_("event id"), max_length=255, blank=True, db_index=True)
    event_type = models.CharField(_("event type"), max_length=100, blank=True)
    order_number = models.CharField(_("order number"), max_length=64, blank=True, db_index=True)
    payment_id = models.CharField(_("PG payment id"), max_length=200, blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.TextField(_("body"), blank=True)
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    verified = models.BooleanField(_("verified"), default=False)
    processed = models.BooleanField(_("processed"), default=False, db_index=True)
    duplicate_of = models.ForeignKey(
        "self", verbose_name=_("duplicate of"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(_("status"), max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.RECEIVED, db_index=True)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0, help_text=_("How often it was processed."))
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    attempted_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-received_at", "-pk"]
        indexes = [models.Index(fields=["gateway", "event_id"], name="pgpay_webhook_gw_event")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.event_type or '?'} {self.event_id or self.pk}"


class ReconcileState(models.Model):
    """How reconciling one order went lately, so that an order the PG cannot read waits its turn.

    ``pgpay_reconcile`` writes one row per order whose reconciliation failed
    (the PG did not answer, its reply could not be read) and deletes it once
    the order reconciles again. An order with a row is visited again only
    after ``next_attempt_at`` (a backoff that grows with ``failures``), and
    after the orders that did not fail: one unreadable payment never holds
    up the rest.
    """

    order_model = models.CharField(_("order model"), max_length=100)
    order_pk = models.CharField(_("order id"), max_length=64)
    order_number = models.CharField(_("order number"), max_length=64, blank=True)
    failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True, db_index=True)
    last_error = models.TextField(_("last error"), blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("reconciliation backoff")
        verbose_name_plural = _("reconciliation backoffs")
        constraints = [models.UniqueConstraint(fields=["order_model", "order_pk"], name="pgpay_reconcile_state_order")]

    def __str__(self) -> str:
        return f"{self.order_model} {self.order_number or self.order_pk}: {self.failures} failure(s)"


class CheckoutLock(models.Model):
    """One of a fixed set of rows that checkouts of buyers without an account lock (:mod:`django_pgpay.checkout_locks`).

    The migration writes :data:`~django_pgpay.checkout_locks.SLOTS` of them
    once; a checkout locks the one its form's token falls on
    (``SELECT ... FOR UPDATE``) and never writes the table.
    """

    slot = models.PositiveIntegerField(_("slot"), primary_key=True)

    class Meta:
        verbose_name = _("checkout lock")
        verbose_name_plural = _("checkout locks")

    def __str__(self) -> str:
        return f"checkout lock {self.slot}"


class ExportJob(models.Model):
    """An admin CSV export or invoice batch that runs as a task, with its progress and, when done, its file.

    The order admin creates one when a selection is larger than
    ``PGPAY["BACKGROUND_EXPORT_ROWS"]`` (CSV) or ``PGPAY["BACKGROUND_INVOICES"]``
    (invoices) and a queueing ``TASKS`` backend is configured; a worker runs it
    (:mod:`django_pgpay.jobs`) and writes the file to the default storage. Its
    admin page shows how far it got and links the download, served to the
    person who asked for it (or a superuser) only.
    """

    class Kind(models.TextChoices):
        CSV = "csv", _("CSV export")
        INVOICE_PDF = "invoice_pdf", _("Invoices (one PDF)")
        INVOICE_ZIP = "invoice_zip", _("Invoices (ZIP of PDFs)")

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    model_label = models.CharField(_("order model"), max_length=100)
    pks = models.JSONField(_("orders"), default=list, help_text=_("The primary keys of the selected orders."))
    language = models.CharField(_("language"), max_length=16, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    total = models.PositiveIntegerField(_("orders in all"), default=0)
    done = models.PositiveIntegerField(_("orders done"), default=0)
    file = models.FileField(_("file"), upload_to="pgpay/jobs/", blank=True)
    filename = models.CharField(_("file name"), max_length=200, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("asked by"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("asked at"), default=timezone.now, db_index=True)
    #: When a worker last showed it was at work on the job (took it, wrote progress).
    progressed_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    #: Counts the claims of the job: a worker writes progress and its file only while the job is
    #: still its own (a job run again after it went quiet belongs to the new run).
    attempt = models.PositiveIntegerField(_("attempt"), default=0, editable=False)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("export job")
        verbose_name_plural = _("export jobs")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.filename or f"{self.get_kind_display()} #{self.pk}"

    #: A queued or running job with no sign of a worker for this long is :attr:`stalled`. A worker
    #: writes progress every few thousand rows or fifty invoices, seconds apart.
    STALLED_AFTER = timedelta(minutes=15)

    @property
    def stalled(self) -> bool:
        """Queued or running with no sign of a worker for :attr:`STALLED_AFTER`.

        Its task was lost (a broker that dropped it) or its worker stopped in
        the middle (killed, redeployed): nothing will finish it. The admin
        page offers to run it again (:func:`django_pgpay.jobs.requeue`).
        """
        if self.state not in (self.State.QUEUED, self.State.RUNNING):
            return False
        return (self.progressed_at or self.created_at) < timezone.now() - self.STALLED_AFTER

    @property
    def waiting(self) -> bool:
        """Stalled before any worker took it: the queue may only be busy (or its task was lost)."""
        return self.stalled and self.state == self.State.QUEUED

    @property
    def percent(self) -> int:
        """How far the job got, 0 to 100."""
        return 100 if self.state == self.State.DONE else (self.done * 100 // self.total if self.total else 0)
