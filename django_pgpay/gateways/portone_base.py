"""What PortOne's two APIs share: checkout helpers and the ``INCLUDE_SANDBOX`` rule.

:mod:`.portone_v1` (iamport, ``api.iamport.kr``) and :mod:`.portone_v2`
(``api.portone.io``) subclass :class:`PortOneGateway`; the old import path
:mod:`django_pgpay.gateways.portone` re-exports both.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core import checks

from ..money import quantize
from .pipeline import HttpGateway
from .results import CheckoutUrls, OrderSnapshot


class PortOneGateway(HttpGateway):
    """Capabilities and checkout helpers shared by PortOne V1 and V2; not a gateway by itself."""

    pg_name = "PortOne"
    supports_partial_cancel = True
    #: V1 ``checksum`` / V2 ``currentCancellableAmount``: a repeated cancel is refused by PortOne.
    supports_idempotency_key = True
    supports_lookup_by_order = True
    supports_virtual_account = True
    #: PortOne approves in the payment window; the server only verifies (the default confirm: a lookup).
    requires_confirm_call = False

    #: The id of the check that warns of ``INCLUDE_SANDBOX`` without DEBUG.
    SANDBOX_CHECK_ID = "django_pgpay.W112"

    def sandbox_checks(self, debug: bool) -> list[checks.CheckMessage]:
        """Test-channel payments accepted without DEBUG (the last of each version's checks)."""
        messages = []
        value = self._options.get("INCLUDE_SANDBOX")
        if value is not None and not isinstance(value, bool):
            messages.append(
                checks.Error(
                    f'{self.where}["INCLUDE_SANDBOX"] = {value!r} must be True or False (it is read as False).',
                    id="django_pgpay.E112",
                )
            )
        if self.include_sandbox and not debug:
            messages.append(
                checks.Warning(
                    f'{self.where}["INCLUDE_SANDBOX"] is True with DEBUG = False: test-channel payments pay orders.',
                    hint="Remove it in production; test channels move no money.",
                    id=self.SANDBOX_CHECK_ID,
                )
            )
        return messages

    @property
    def include_sandbox(self) -> bool:
        """Payments made on PortOne test channels count as real ones (development only)."""
        return self._options.get("INCLUDE_SANDBOX", False) is True  # "False" (text from the environment) is not True

    def _notice_url(self, urls: CheckoutUrls) -> str:
        """The per-payment webhook URL, unless ``NOTICE_URL`` is False (then the console's URL is used)."""
        if self._options.get("NOTICE_URL", True) is False:
            return ""
        return urls.webhook_url

    @staticmethod
    def _prepared_marker(order: OrderSnapshot) -> str:
        return f"{quantize(order.amount, order.currency)} {order.currency}"

    @staticmethod
    def _return_value(params: Mapping[str, str], *names: str) -> str:
        for name in names:
            value = params.get(name)
            if value not in (None, ""):
                return str(value)
        return ""


def text(value) -> str:
    """A non-empty string from a reply, or ``ValueError``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not an id")
    return value


__all__ = ["PortOneGateway", "text"]
