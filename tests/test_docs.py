"""The docs' feature matrix says what the gateway classes declare."""

import re
from pathlib import Path

from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parent.parent
GATEWAYS = {
    "Toss": "django_pgpay.gateways.toss.TossGateway",
    "PortOne V1": "django_pgpay.gateways.portone.PortOneV1Gateway",
    "PortOne V2": "django_pgpay.gateways.portone.PortOneV2Gateway",
    "Stripe": "django_pgpay.gateways.stripe.StripeGateway",
    "Bootpay": "django_pgpay.gateways.bootpay.BootpayGateway",
    "Fake": "django_pgpay.gateways.fake.FakeGateway",
}
FLAGS = [
    "supports_partial_cancel",
    "supports_idempotency_key",
    "signs_webhooks",
    "supports_lookup_by_order",
    "supports_virtual_account",
    "requires_confirm_call",
]


def matrix() -> dict[str, list[str]]:
    """Rows of the first list-table in docs/gateways.rst: name -> cells."""
    text = (ROOT / "docs" / "gateways.rst").read_text("utf-8")
    table = text.split(".. list-table::", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for block in table.split("   * - ")[1:]:
        lines = block.strip().splitlines()
        rows[lines[0].strip()] = [re.sub(r"^- ", "", line.strip()) for line in lines[1:]]
    return rows


def test_feature_matrix_matches_capability_flags():
    rows = matrix()
    assert set(GATEWAYS) <= set(rows), rows.keys()
    for name, path in GATEWAYS.items():
        cells = rows[name]
        try:
            cls = import_string(path)
        except ImportError:
            assert set(cells) == {"planned"}, f"{name} is not released: its row must say planned"
            continue
        expected = ["yes" if getattr(cls, flag) else "no" for flag in FLAGS]
        assert cells == expected, f"docs/gateways.rst row {name}: {cells} != class flags {expected}"
