"""The sandbox's own state, in the database so several server processes share it.

Every table carries a ``pg`` column (``"toss"``, ``"stripe"`` ...), so
one set of tables serves every emulated PG. None of them holds a key: the
idempotency table keeps a SHA-256 of its identity, never the secret key.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SandboxPayment(models.Model):
    """One payment as the emulated PG knows it.

    ``state`` is the PG's own object exactly as its API returns it (Toss's
    Payment); ``session`` holds what the browser step registered and the
    sandbox's private notes (success/fail URLs, when the buyer authenticated,
    a deposit scheduled for later ...), never sent on the wire.
    """

    pg = models.CharField(max_length=16)
    key = models.CharField(max_length=200, help_text="The PG's id of the payment (Toss: paymentKey).")
    order_id = models.CharField(max_length=100, db_index=True, help_text="The shop's order id.")
    status = models.CharField(max_length=32, db_index=True)
    state = models.JSONField(default=dict)
    session = models.JSONField(default=dict)
    #: Next time-based change (confirm window, deposit deadline, scheduled
    #: deposit), on the sandbox clock; the worker's sweep looks here.
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pg", "key"], name="pgpay_sandbox_payment_key")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.pg} {self.key} {self.status}"


class SandboxIdempotency(models.Model):
    """The first answer to an idempotent request, replayed to every repeat.

    ``identity`` is SHA-256 over (PG, key, API key, method, path). A row whose
    ``status`` is None is still in flight: a repeat gets the PG's "processing"
    answer (Toss: 409 ``IDEMPOTENT_REQUEST_PROCESSING``).
    """

    identity = models.CharField(max_length=64, unique=True)
    pg = models.CharField(max_length=16)
    idempotency_key = models.CharField(max_length=300)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    #: SHA-256 of what a repeat must match (Stripe: method, path and
    #: parameters); empty when the PG replays the first answer to anything.
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    #: Sandbox clock: the key's validity (Toss: 15 days) counts from here.
    created_at = models.DateTimeField()
    #: Real time: an in-flight row older than the lease is taken over.
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.pg} {self.method} {self.path} -> {self.status or 'in flight'}"


class SandboxFault(models.Model):
    """A fault armed for the next ``remaining`` matching calls.

    ``operation`` is what it applies to (``confirm``, ``cancel``, ``lookup``,
    ``webhook`` or ``*``), ``match`` an optional payment key or order id, and
    ``params`` the fault's knobs (``status``, ``code``, ``message``, ``delay``,
    ``seconds``, ``count``).
    """

    pg = models.CharField(max_length=16)
    operation = models.CharField(max_length=32)
    kind = models.CharField(max_length=32)
    match = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    remaining = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        target = f" [{self.match}]" if self.match else ""
        return f"{self.pg} {self.operation}{target}: {self.kind} x{self.remaining}"


class SandboxWebhook(models.Model):
    """One webhook in the outbox: the exact body the PG sends, and its delivery state."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # retries exhausted
    DROPPED = "dropped"  # lost on purpose (a fault)
    STATUSES = [(PENDING, PENDING), (DELIVERED, DELIVERED), (FAILED, FAILED), (DROPPED, DROPPED)]

    pg = models.CharField(max_length=16)
    event_type = models.CharField(max_length=64)
    payment_key = models.CharField(max_length=200, blank=True)
    url = models.CharField(max_length=1000)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    #: Sandbox clock; None while held back (a "reorder" batch still filling).
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    #: The reorder fault that holds this delivery back, if any.
    hold_group = models.PositiveIntegerField(null=True, blank=True)
    #: Real time until which one process owns this delivery.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(help_text="Sandbox clock.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    #: Set on a copy made by the "duplicate" fault: the delivery it repeats.
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.pg} {self.event_type} #{self.pk} {self.status}"


class SandboxDeliveryAttempt(models.Model):
    """One HTTP attempt at delivering a webhook."""

    webhook = models.ForeignKey(SandboxWebhook, on_delete=models.CASCADE, related_name="delivery_attempts")
    at = models.DateTimeField(help_text="Sandbox clock.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.webhook_id} -> {self.status_code or self.error}"


class SandboxClock(models.Model):
    """The sandbox clock's offset from real time (one row)."""

    offset_us = models.BigIntegerField(default=0, help_text="Microseconds added to real time.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"clock offset {self.offset_us / 1e6:+.3f} s"


class SandboxToken(models.Model):
    """An access token the emulated PG handed out (Bootpay's ``POST /v2/request/token``, PortOne V1's ``getToken``).

    Neither the token nor the key it was asked for is stored: ``subject`` is a
    SHA-256 of the key pair's public half (the application id), ``digest`` a
    SHA-256 of the token, and the token itself is derived again from
    ``salt`` with the project's ``SECRET_KEY`` when the PG hands the same
    token out a second time (:mod:`django_pgpay.sandbox.tokens`). Times are on the sandbox clock.
    """

    pg = models.CharField(max_length=16)
    subject = models.CharField(max_length=64, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    salt = models.CharField(max_length=64)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    #: How many token requests were answered with this token (PortOne's ``token_requests``).
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-issued_at", "-id"]

    def __str__(self) -> str:
        return f"{self.pg} token until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class SandboxPrepared(models.Model):
    """An amount the shop registered at the PG before the payment window opens.

    PortOne V1's ``POST /payments/prepare`` (``key`` is the ``merchant_uid``)
    and V2's ``POST /payments/{paymentId}/pre-register`` (``key`` is the
    ``paymentId``): a window that asks for another amount is refused, unless a
    developer let the next one through (``allow_other_amount``, used up by it).
    """

    pg = models.CharField(max_length=16)
    key = models.CharField(max_length=200)
    #: None when the pre-registration left the amount open (V2).
    amount = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    tax_free_amount = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    store_id = models.CharField(max_length=100, blank=True)
    allow_other_amount = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pg", "key"], name="pgpay_sandbox_prepared_key")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.pg} {self.key} {self.amount} {self.currency}"

    def take_allowance(self) -> bool:
        """Whether this window may carry another amount; asking uses the allowance up (call on a locked row)."""
        if not self.allow_other_amount:
            return False
        self.allow_other_amount = False
        self.save(update_fields=["allow_other_amount", "updated_at"])
        return True
