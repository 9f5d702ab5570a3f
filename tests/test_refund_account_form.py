"""The refund account form (django_pgpay.refund_accounts): what it accepts, and the bank as each PG spells it."""

import json

import pytest

from django_pgpay import labels, refund_accounts
from django_pgpay.conf import get_gateway
from tests.portone_specs import SKIP_REASON, SPECS

GOOD = {"refund_bank": "088", "refund_number": "110-123 456789", "refund_holder": " 박토스 ", "refund_phone": "010-1234-5678"}


def test_a_typed_account_is_cleaned():
    form = refund_accounts.RefundAccountForm(GOOD)
    assert form.is_valid(), form.errors
    assert form.cleaned_data == {
        "refund_bank": "088",
        "refund_number": "110123456789",
        "refund_holder": "박토스",
        "refund_phone": "01012345678",
    }
    assert refund_accounts.describe(form.cleaned_data) == f"{labels.BANKS['088']} 110123456789 (박토스)"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("refund_bank", ""),  # no bank chosen (the first choice is blank, so nobody refunds to KDB by default)
        ("refund_bank", "999"),
        ("refund_number", "12345"),
        ("refund_number", "１１０１２３４５６７８９"),  # full-width digits: not what a bank transfer takes
        ("refund_number", "110-abc-456"),
        ("refund_number", "1" * 21),
        ("refund_holder", "   "),
        ("refund_holder", "박\x00토스"),
        ("refund_holder", "x" * 31),
        ("refund_phone", "010-12"),
        ("refund_phone", "phone"),
    ],
)
def test_what_is_no_account_is_refused(field, value):
    form = refund_accounts.RefundAccountForm({**GOOD, field: value})
    assert not form.is_valid() and field in form.errors


def test_toss_gets_its_own_code_for_kb_kookmin(toss):
    """Toss's bank code table: KB국민은행 is "06", not the KFTC code's last two digits ("04"); the others are."""
    gateway = get_gateway("toss")
    assert refund_accounts.bank_code(gateway, "004") == "06"
    assert [refund_accounts.bank_code(gateway, code) for code in ("088", "020", "081", "090", "092", "011")] == [
        "88", "20", "81", "90", "92", "11",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("alias", "spelled"),
    [("toss", "88"), ("portone", "088"), ("bootpay", "088"), ("portone-v2", "SHINHAN")],
)
def test_the_bank_is_sent_as_each_pg_spells_it(alias, spelled, toss, portone, portone_v2, bootpay):
    form = refund_accounts.RefundAccountForm(GOOD)
    assert form.is_valid()
    account = form.account(get_gateway(alias))
    assert (account.bank, account.number, account.holder, account.phone) == (spelled, "110123456789", "박토스", "01012345678")


def test_every_bank_has_a_name_portone_v2_knows():
    path = SPECS / "v2.openapi.json"
    if not path.is_file():
        pytest.skip(SKIP_REASON)
    known = set(json.loads(path.read_text("utf-8"))["components"]["schemas"]["Bank"]["enum"])
    assert {labels.bank_enum(code) for code, _name in labels.bank_choices()} <= known


@pytest.mark.django_db
def test_only_money_paid_into_a_virtual_account_needs_one(make_booking, seat):
    seat.remain = 10
    seat.save()
    vbank = {"vbank_account_number": "12345678901234"}
    card = make_booking(status="PAID")
    account = make_booking(status="PAID", pg_data=vbank)
    named = make_booking(status="PAID", method="가상계좌")
    waiting = make_booking(status="WAITING_FOR_DEPOSIT", pg_data=vbank)
    # An account issued, then withdrawn when the buyer paid by card after all: its fields stay in pg_data.
    by_card = make_booking(status="PAID", pg_data=vbank, method="card")
    assert [refund_accounts.needed(o) for o in (card, account, named, waiting, by_card)] == [False, True, True, False, False]
