"""PortOne (ex-iamport): the old import path of both API versions.

The gateways live in :mod:`.portone_v1` (:class:`PortOneV1Gateway`, the REST API
of the tutorials) and :mod:`.portone_v2` (:class:`PortOneV2Gateway`). Settings
that name ``django_pgpay.gateways.portone.PortOneV1Gateway`` or
``...portone.PortOneV2Gateway`` keep working through these re-exports.
"""

from __future__ import annotations

from .pipeline import TOKEN_REFRESH_MARGIN, AccessToken, AccessTokenCache
from .portone_v1 import PG_DATA_PREPARED_V1, V1_MERCHANT_UID_MAX, V1_MESSAGES, V1_STATUSES, PortOneV1Gateway
from .portone_v2 import PG_DATA_PREPARED_V2, V2_ERRORS, V2_STATUSES, PortOneV2Gateway

__all__ = [
    "PG_DATA_PREPARED_V1",
    "PG_DATA_PREPARED_V2",
    "TOKEN_REFRESH_MARGIN",
    "V1_MERCHANT_UID_MAX",
    "V1_MESSAGES",
    "V1_STATUSES",
    "V2_ERRORS",
    "V2_STATUSES",
    "AccessToken",
    "AccessTokenCache",
    "PortOneV1Gateway",
    "PortOneV2Gateway",
]
