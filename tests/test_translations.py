import subprocess
from pathlib import Path

import pytest
from django.utils import translation

import django_pgpay
from django_pgpay.exceptions import NotCancelable, SoldOut
from django_pgpay.status import OrderStatus

LOCALE = Path(django_pgpay.__file__).parent / "locale"


def test_korean_labels_and_messages():
    with translation.override("ko"):
        assert str(OrderStatus.PAID.label) == "결제 완료"
        assert str(OrderStatus.PARTIAL_CANCELED.label) == "부분 취소"
        # "주문" (order), not the seed tutorial's "예약" (booking): the library serves carts too.
        assert str(NotCancelable().user_message) == "취소할 수 없는 주문입니다."
        assert str(SoldOut().user_message) == "매진되었습니다."  # not "no seats left": a cart sells goods
    with translation.override("en"):
        assert str(NotCancelable().user_message) == "This order cannot be cancelled."


def test_the_admin_action_menu_blank_choice_reads_in_korean(admin_client):
    """Django 6 labels a blank choice "- Select an option -" and its Korean catalogue leaves it
    untranslated; ours translates it, so the order list's action menu is Korean throughout."""
    with translation.override("ko"):
        assert translation.gettext("- Select an option -") == "- 선택하세요 -"
    page = admin_client.get("/admin/testapp/booking/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert 'name="action"' in page
    assert "Select an option" not in page


@pytest.mark.parametrize("po", sorted(LOCALE.glob("*/LC_MESSAGES/*.po")), ids=lambda p: p.parent.parent.name)
def test_catalogues_are_complete_and_compiled(po, tmp_path):
    """Every message translated, no fuzzy entry, and the shipped .mo is this .po compiled."""
    text = po.read_text("utf-8")
    assert "#, fuzzy" not in text
    stats = subprocess.run(
        ["msgfmt", "--statistics", "--check", "-o", str(tmp_path / "x.mo"), str(po)], capture_output=True, text=True, check=True
    )
    assert "untranslated" not in stats.stderr and "fuzzy" not in stats.stderr, stats.stderr
    assert (tmp_path / "x.mo").read_bytes() == po.with_suffix(".mo").read_bytes(), "run: make messages"
