"""The sandbox's data migrations move old rows as they say: migrated down to before, rows written, migrated up.

Migration 0004 took PortOne's prepared amounts (kept until then as fake payments, ``pg``
``portone.prepare`` / ``portone-v2.prep``) into their own table and dropped PortOne V1's old
token rows (``portone.token``); a client asks for a new token.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("pgpay_sandbox", "0003_idempotency_fingerprint")
AFTER = ("pgpay_sandbox", "0004_portone_tokens_and_prepared")


def migrate(target):
    """Migrate the sandbox app to ``target``; the historical models at that point."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return MigrationExecutor(connection).loader.project_state([target]).apps


@pytest.fixture
def before_0004():
    apps = migrate(BEFORE)
    try:
        yield apps
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_0004_moves_prepared_amounts_and_drops_old_tokens(before_0004):
    payment = before_0004.get_model("pgpay_sandbox", "SandboxPayment")
    old = [
        ("portone.prepare", "m-1", {"amount": 15000}, {"allowOtherAmount": True}),
        ("portone-v2.prep", "p-2", {"totalAmount": "10.50", "currency": "USD", "taxFreeAmount": 0, "storeId": "store-1"}, {}),
        ("portone.prepare", "m-bad", {"amount": "not a number"}, {}),
        ("portone.token", "tok-1", {}, {}),
        ("toss", "pay-1", {"totalAmount": 1000}, {}),
    ]
    for pg, key, state, session in old:
        payment.objects.create(pg=pg, key=key, order_id=key, status="X", state=state, session=session)

    apps = migrate(AFTER)

    prepared = apps.get_model("pgpay_sandbox", "SandboxPrepared")
    rows = {(r.pg, r.key): (r.amount, r.currency, r.tax_free_amount, r.store_id, r.allow_other_amount) for r in prepared.objects.all()}
    assert rows == {
        ("portone", "m-1"): (Decimal(15000), "", None, "", True),
        ("portone-v2", "p-2"): (Decimal("10.50"), "USD", Decimal(0), "store-1", False),
        ("portone", "m-bad"): (None, "", None, "", False),  # an unreadable amount is kept as none, not a crash
    }
    left = apps.get_model("pgpay_sandbox", "SandboxPayment").objects.values_list("pg", "key")
    assert list(left) == [("toss", "pay-1")]  # the real payment stays; the old rows are gone
