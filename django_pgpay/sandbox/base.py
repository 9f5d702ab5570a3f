"""What every emulated PG shares: the request pipeline of its server API.

An emulated PG is one module with one :class:`SandboxPG` subclass, listed in
:data:`~.registry.EMULATORS`. The subclass says how its PG authenticates, how its errors
look and which header carries an idempotency key; :meth:`SandboxPG.serve`
runs every API call through the same steps::

    guard (DEBUG) -> authenticate -> PG test header -> idempotency claim
      -> fault armed for this call? -> handler in one transaction (state change
         and outgoing webhooks commit together) -> keep the answer for replay
      -> fault after commit (5xx, late or broken answer) -> the wire

A handler returns an :class:`Answer` (also for an error that changed state,
like a decline) or raises :class:`ApiError` for a refusal that changes
nothing (the transaction rolls back).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from . import clock, conf, faults, idempotency, lifecycle, worker
from .registry import EMULATORS, emulator, emulators  # noqa: F401 - re-exported (older imports)

logger = logging.getLogger("django_pgpay.sandbox")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of an emulated API: status, exact body text, content type."""

    status: int
    body: str
    content_type: str = "application/json"
    #: Extra response headers, e.g. Stripe's ``Stripe-Should-Retry`` (not kept for replays).
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, data: Any) -> Answer:
        return cls(status, dumps(data))

    def response(self) -> HttpResponse:
        response = HttpResponse(self.body.encode("utf-8"), status=self.status, content_type=self.content_type)
        for name, value in self.headers:
            response[name] = value
        return response


class Problem(enum.Enum):
    """What goes wrong in the pipeline itself, in no PG's words.

    Each PG names these in its table :attr:`SandboxPG.problem_codes`
    (Toss: ``INVALID_REQUEST`` for a body that is not JSON, Bootpay:
    ``INVALID_PARAMETER``) and renders them like any of its errors.
    """

    MALFORMED_BODY = "malformed_body"
    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    IDEMPOTENCY_IN_FLIGHT = "idempotency_in_flight"
    #: A fault or a crash before anything was committed.
    INTERNAL = "internal"
    #: A fault after the change committed (the caller cannot know what happened).
    INTERNAL_AFTER_COMMIT = "internal_after_commit"


class ApiError(Exception):
    """A refusal in a PG's own words; nothing was changed.

    ``code`` is the PG's error code; ``status`` and ``message`` default to
    what the PG's error table says for it. ``problem`` is set when the
    pipeline itself raised it (see :class:`Problem`).
    """

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None, problem: Problem | None = None):
        self.code = code
        self.message = message
        self.status = status
        self.problem = problem
        super().__init__(code)


@dataclass
class ApiContext:
    """One API call: the request, the caller's language and the sandbox time it happens at."""

    request: HttpRequest
    now: datetime
    lang: str = "ko"
    #: The API key the call authenticated with (never stored or logged).
    api_key: str = field(default="", repr=False)
    data: Any = None

    @property
    def origin(self) -> str:
        return f"{self.request.scheme}://{self.request.get_host()}"


def dumps(data: Any) -> str:
    """JSON as PGs write it: UTF-8 text, Decimals as numbers (never through float)."""
    from ..gateways.http import dumps_json

    return dumps_json(data)


def loads(text: str | bytes) -> Any:
    """Parse a JSON request body; non-integral numbers become Decimal.

    ``ValueError`` for anything a PG would refuse as malformed: not JSON,
    nested too deep, ``NaN``/``Infinity`` (never a ``RecursionError``).
    """
    from ..gateways.http import loads_json

    return loads_json(text)


def framed(view):
    """A view of a payment window the PG's SDK opens in an iframe over the shop's page.

    The real PG's window may be framed by any shop, so the sandbox's copy is exempt
    from ``X-Frame-Options`` (Django's ``XFrameOptionsMiddleware`` would send
    ``DENY`` and the shop's page would show an empty frame); its POSTs carry
    the window's own token instead of Django's CSRF cookie, which is third-party
    inside the frame.
    """
    return xframe_options_exempt(csrf_exempt(view))


def guard() -> None:
    """404 unless the sandbox may serve (see :func:`django_pgpay.sandbox.conf.allowed`)."""
    if not conf.allowed():
        raise Http404("The payment sandbox is off (DEBUG is False).")
    worker.ensure_worker()


class SandboxPG:
    """One emulated PG.

    A subclass sets :attr:`name` and :attr:`settings_section`, its webhook
    :attr:`retry_schedule`, and implements :meth:`authenticate`,
    :meth:`error_answer`, :meth:`urlpatterns`, :meth:`actions` and
    :meth:`apply_due_to`. It keeps its state in
    :class:`~django_pgpay.sandbox.models.SandboxPayment` rows with ``pg=name``.
    """

    #: Short name: URL prefix, ``pg`` column, fault and webhook scope.
    name = ""
    #: Key of ``PGPAY_SANDBOX`` with this PG's settings.
    settings_section = ""
    #: Human name for pages and messages.
    title = ""
    #: Seconds between webhook retries (one entry per retry).
    retry_schedule: tuple[float, ...] = ()
    #: Header that carries an idempotency key ("" when the PG has none).
    idempotency_header = ""
    #: Longest idempotency key the PG accepts.
    idempotency_key_max = 255
    #: How long the PG remembers an idempotency key.
    idempotency_lifetime = timedelta(days=1)
    #: Settings of the PG's section that list made-up keys (each must start with ``test_``).
    key_settings: tuple[str, ...] = ("SECRET_KEYS", "CLIENT_KEYS")
    #: Key lists of which at least one must be filled, or every API call is refused.
    required_key_settings: tuple[str, ...] = ("SECRET_KEYS",)
    #: The pipeline's own problems in this PG's codes (see :class:`Problem`).
    problem_codes: dict[Problem, str] = {}
    #: The lifecycle's refusals in this PG's codes: a code, or (code, message).
    refusals: dict[lifecycle.Refusal, str | tuple[str, str]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # --- settings ----------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """``PGPAY_SANDBOX[settings_section]`` (empty when the PG is not configured)."""
        return conf.pg_settings(self.settings_section) or {}

    @property
    def configured(self) -> bool:
        return conf.pg_settings(self.settings_section) is not None

    def webhook_url(self, origin: str = "") -> str:
        """Absolute URL webhooks go to, or "" when none is configured."""
        url = str(self.config().get("WEBHOOK_URL") or "")
        if not url or url.startswith(("http://", "https://")):
            return url
        return f"{(origin or conf.site_url()).rstrip('/')}/{url.lstrip('/')}"

    def webhook_schedule(self) -> list[float]:
        """Retry delays in seconds after the TIME_SCALE setting."""
        schedule = conf.webhook_option("RETRY_SCHEDULE")
        if schedule is None:
            schedule = self.retry_schedule
        scale = float(conf.webhook_option("TIME_SCALE"))
        return [float(s) * scale for s in schedule]

    # --- hooks ---------------------------------------------------------------

    def urlpatterns(self) -> list:
        """URL patterns under ``sandbox/<name>/``."""
        return []

    def actions(self) -> dict[str, Callable[..., Any]]:
        """Things the PG's staff, a bank or a buyer do, callable from tests and the control API.

        Named from :data:`ACTION_NAMES` where one fits (``pay``, ``deposit``, ``cancel``, ``expire``,
        ``state`` ...), so the dashboard, the control API and tests say the same thing for every PG.
        """
        return {}

    #: Older names of actions, still accepted: old name -> name in :meth:`actions`.
    action_aliases: dict[str, str] = {}

    def action(self, name: str) -> Callable[..., Any]:
        """The action ``name`` (an older name too); ``KeyError`` naming the known ones."""
        actions = self.actions()
        found = actions.get(self.action_aliases.get(name, name))
        if found is None:
            raise KeyError(f"{self.name} has no action {name!r}; known: {sorted(actions)}")
        return found

    def apply_due(self, now: datetime) -> int:
        """Apply time-based changes due at ``now`` (expiries, scheduled deposits); returns how many.

        Each payment whose ``due_at`` has come (200 at a time, oldest first) goes
        to :meth:`apply_due_to` in a transaction of its own.
        """
        from .models import SandboxPayment

        due = SandboxPayment.objects.filter(pg=self.name, due_at__lte=now).order_by("due_at")
        changed = 0
        for key in list(due.values_list("key", flat=True)[:200]):
            with transaction.atomic():
                changed += int(self.apply_due_to(key, now))
        return changed

    def apply_due_to(self, key: str, now: datetime) -> bool:
        """Lock the payment ``key`` and apply what is due to it at ``now``; True when it changed."""
        return False

    def authenticate(self, ctx: ApiContext) -> str:
        """Return the API key of the call, or raise :class:`ApiError`."""
        raise NotImplementedError

    def webhook_acknowledged(self, status_code: int, body: bytes) -> bool:
        """Whether the shop's answer to a webhook counts as delivered (Toss: HTTP 200; Stripe: any 2xx)."""
        return status_code == 200

    def describe(self, payment) -> dict[str, Any]:
        """Amount, balance and method of a payment, for the dashboard and the control API.

        Each PG says where its Payment object keeps them; the base knows no PG's fields.
        """
        return {"amount": None, "balance": None, "method": None}

    # --- neutral errors in the PG's words ------------------------------------------

    def problem(self, problem: Problem, *, status: int | None = None) -> ApiError:
        """The pipeline's ``problem`` as this PG's :class:`ApiError` (its :attr:`problem_codes`)."""
        return ApiError(self.problem_codes.get(problem, problem.value), status=status, problem=problem)

    def refused(self, refused: lifecycle.Refused) -> ApiError:
        """A lifecycle refusal as this PG's :class:`ApiError` (its :attr:`refusals` table)."""
        entry = self.refusals.get(refused.refusal, refused.refusal.value)
        code, message = (entry, None) if isinstance(entry, str) else entry
        return ApiError(code, message)

    def plan_cancel(self, ledger: lifecycle.Ledger, amount=None, **kwargs) -> lifecycle.CancelPlan:
        """:func:`.lifecycle.plan_cancel`, its refusal raised as this PG's :class:`ApiError`."""
        try:
            return lifecycle.plan_cancel(ledger, amount, **kwargs)
        except lifecycle.Refused as refused:
            raise self.refused(refused) from refused

    def dashboard_actions(self, payment) -> list[tuple[str, str]]:
        """(action, label) buttons the dashboard offers for ``payment``; the action gets ``payment_key``."""
        return []

    def api_base(self, base: str) -> str:
        """The base URL a client of this PG is given, from the sandbox's URL for it (``.../sandbox/<name>``)."""
        return base

    def sdk_url(self, base: str) -> str:
        """URL of the PG's JavaScript SDK stand-in, given this PG's base URL ("" when there is none)."""
        return ""

    def error_answer(self, ctx: ApiContext, error: ApiError) -> Answer:
        """The PG's error answer for ``error``."""
        raise NotImplementedError

    def test_code(self, ctx: ApiContext) -> ApiError | None:
        """An error the caller forced with a PG test header (Toss's ``TossPayments-Test-Code``)."""
        return None

    def language(self, request: HttpRequest) -> str:
        return "ko"

    def check_config(self, value: dict[str, Any]) -> list:
        """System-check messages of this PG's own about its settings section (beyond the key lists)."""
        return []

    def dashboard_context(self, base: str) -> dict[str, Any]:
        """Extra entries of this PG's dashboard card: ``sdk_url``, ``snippet`` (settings to paste), ``console_url``."""
        return {}

    def parse_body(self, ctx: ApiContext) -> Any:
        """The request's JSON body (None when empty); raise ApiError when it is not JSON."""
        if not ctx.request.body:
            return None
        try:
            return loads(ctx.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self.problem(Problem.MALFORMED_BODY) from exc

    def malformed_body(self) -> str:
        """What a broken answer looks like (a proxy's HTML page cut short)."""
        return "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"

    # --- hooks a PG overrides when it differs ------------------------------------------

    def is_test_key(self, setting: str, key: str) -> bool:
        """True when ``key`` of ``PGPAY_SANDBOX[section][setting]`` is a made-up test key (system check E003)."""
        return key.startswith("test_")

    #: How a test key starts, for the message of system check E003.
    test_key_hint = "test_"

    def idempotency_scope(self, ctx: ApiContext) -> tuple[str, str]:
        """(method, path) that, with the key and the API key, identify an idempotent request.

        Toss: the method and the full path. A PG that compares the request's
        parameters instead (Stripe) scopes a key to the API key alone.
        """
        return ctx.request.method, ctx.request.get_full_path()

    def idempotency_fingerprint(self, ctx: ApiContext) -> str:
        """A digest of what a repeat must match ("" = anything: Toss replays the first answer to any body)."""
        return ""

    def idempotency_mismatch(self, ctx: ApiContext, claim: idempotency.Claim) -> Answer:
        """The answer to a key reused with other parameters (only when :meth:`idempotency_fingerprint` is used)."""
        return self.error_answer(ctx, self.problem(Problem.IDEMPOTENCY_MISMATCH))

    def keeps_error(self, error: ApiError) -> bool:
        """Whether a refusal is kept for replay under its idempotency key (Toss: always)."""
        return True

    def decorate(self, ctx: ApiContext, response: HttpResponse, *, replayed: bool = False) -> HttpResponse:
        """Last touch on every API answer (Stripe: ``Request-Id``, ``Idempotent-Replayed``)."""
        return response

    def delivery_headers(self, webhook, now: datetime) -> dict[str, str]:
        """The headers of one delivery attempt of ``webhook`` (Stripe signs each attempt anew).

        Headers starting with ``X-Sandbox-`` are the sandbox's own notes and never sent.
        """
        return {k: v for k, v in (webhook.headers or {}).items() if not k.lower().startswith("x-sandbox-")}

    def dashboard_panel(self, request: HttpRequest) -> dict[str, Any] | None:
        """``{"template": ..., **context}`` of a PG's own section on the dashboard, or None."""
        return None

    # --- the pipeline --------------------------------------------------------

    def serve(
        self,
        request: HttpRequest,
        operation: str,
        handler: Callable[..., Answer],
        *,
        match: Callable[[ApiContext], Iterable[str]] = lambda ctx: (),
        **kwargs,
    ) -> HttpResponse:
        """Run one API call through the pipeline (see the module docstring)."""
        guard()
        ctx = ApiContext(request=request, now=clock.now(), lang=self.language(request))
        answer, replayed = self._serve(ctx, operation, handler, match, kwargs)
        return self.decorate(ctx, answer.response(), replayed=replayed)

    def _serve(self, ctx: ApiContext, operation: str, handler, match, kwargs) -> tuple[Answer, bool]:
        request = ctx.request
        claim = None
        try:
            ctx.api_key = self.authenticate(ctx)
            forced = self.test_code(ctx)
            if forced is not None:
                return self.error_answer(ctx, forced), False
            if request.method == "POST" and self.idempotency_header:
                key = request.headers.get(self.idempotency_header)
                if key is not None:
                    claim = self._claim(ctx, key)
                    if claim.outcome == "replay":
                        stored = claim.answer
                        return Answer(stored.status, stored.body, stored.content_type), True
                    if claim.outcome == "mismatch":
                        return self.idempotency_mismatch(ctx, claim), False
                    if claim.outcome == "in_flight":
                        return self.error_answer(ctx, self.problem(Problem.IDEMPOTENCY_IN_FLIGHT)), False
            ctx.data = self.parse_body(ctx) if request.method == "POST" else None
        except ApiError as error:
            answer = self.error_answer(ctx, error)
            self._settle_claim(claim, answer, keep=self.keeps_error(error))
            return answer, False

        try:
            fault = faults.take(self.name, operation, match(ctx))
        except Exception:  # pragma: no cover - a broken database
            logger.exception("sandbox %s: could not read armed faults", self.name)
            fault = None
        if fault is not None and fault.kind in faults.BEFORE_KINDS:
            logger.info("sandbox %s %s: fault %s before commit", self.name, operation, fault.kind)
            answer = self._fault_answer(ctx, fault)
            self._settle_claim(claim, answer, keep=False)
            return answer, False

        keep = True
        try:
            with transaction.atomic():
                answer = handler(ctx, fault=fault, **kwargs)
        except ApiError as error:
            answer = self.error_answer(ctx, error)
            keep = self.keeps_error(error)
        except Exception:
            logger.exception("sandbox %s %s failed", self.name, operation)
            self._settle_claim(claim, None, keep=False)
            return self.error_answer(ctx, self.problem(Problem.INTERNAL)), False
        self._settle_claim(claim, answer, keep=keep)
        if fault is not None and fault.kind in faults.AFTER_KINDS:
            logger.info("sandbox %s %s: fault %s after commit", self.name, operation, fault.kind)
            answer = self._fault_answer(ctx, fault, committed=answer)
        return answer, False

    @staticmethod
    def _settle_claim(claim: idempotency.Claim | None, answer: Answer | None, *, keep: bool) -> None:
        """Keep ``answer`` for replays of the claimed key, or free the key (nothing to replay)."""
        if claim is None or not claim.row_id:
            return
        if keep and answer is not None:
            idempotency.finish(claim.row_id, answer.status, answer.content_type, answer.body)
        else:
            idempotency.release(claim.row_id)

    def _claim(self, ctx: ApiContext, key: str) -> idempotency.Claim:
        if len(key) > self.idempotency_key_max or not key.strip():
            raise self.problem(Problem.IDEMPOTENCY_KEY_INVALID)
        fingerprint = self.idempotency_fingerprint(ctx)
        method, path = self.idempotency_scope(ctx)
        return idempotency.begin(
            self.name,
            key,
            ctx.api_key,
            method,
            path,
            now=ctx.now,
            lifetime=self.idempotency_lifetime,
            fingerprint=fingerprint,
            request_path=ctx.request.get_full_path(),
        )

    def _fault_answer(self, ctx: ApiContext, fault: faults.Fault, committed: Answer | None = None) -> Answer:
        kind = fault.kind
        if kind.startswith("timeout"):
            time.sleep(float(fault.param("delay", 35)))
            if committed is not None:
                return committed
            return self.error_answer(ctx, self.problem(Problem.INTERNAL, status=504))
        if kind.startswith("malformed"):
            return Answer(200, str(fault.param("body", self.malformed_body())), "application/json")
        # A code given without a status gets the status the PG's table has for it.
        status = fault.param("status")
        if fault.param("code") is None:
            error = self.problem(Problem.INTERNAL_AFTER_COMMIT if committed else Problem.INTERNAL)
            status = 500 if status is None else status
        else:
            error = ApiError(str(fault.param("code")))
        error.message = fault.param("message")
        error.status = int(status) if status is not None else None
        return self.error_answer(ctx, error)


#: The action names every emulator uses for the same thing (see :meth:`SandboxPG.actions`).
ACTION_NAMES = {
    "pay": "the buyer goes through the payment window (without a browser)",
    "deposit": "the buyer's transfer reaches a virtual account",
    "cancel": "the PG's staff cancel in its console (all, or an amount)",
    "expire": "time runs out on the payment",
    "expire-tokens": "every access token the PG handed out ends now",
    "allow-other-amount": "the next window of a prepared order may carry another amount",
    "state": "the PG's own object of the payment, as its API returns it",
}

#: Choices of a payment window's "when the shop confirms" select: (fault kind, label).
CONFIRM_FAULT_CHOICES = [
    ("", "normal"),
    ("decline", "decline"),
    ("error_before", "error_before"),
    ("error_after", "error_after"),
    ("timeout_before", "timeout_before"),
    ("timeout_after", "timeout_after"),
    ("malformed_after", "malformed_after"),
]
