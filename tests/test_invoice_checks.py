"""System checks for PDF invoices: the INVOICE setting, a Korean font, HarfBuzz's subsetter."""

import subprocess
import sys
from unittest import mock

import pytest

from django_pgpay import checks as pgpay_checks
from django_pgpay.checks import check_invoices, harfbuzz_subset_available


def ids(settings, invoice=None):
    if invoice is not None:
        settings.PGPAY = {**settings.PGPAY, "INVOICE": invoice}
    return [m.id for m in check_invoices()]


@pytest.fixture
def fonts_ok():
    with (
        mock.patch.object(pgpay_checks, "korean_fonts", return_value=["/usr/share/fonts/NanumGothic.ttf"]),
        mock.patch.object(pgpay_checks, "harfbuzz_subset_available", return_value=True),
        mock.patch.object(pgpay_checks, "weasyprint_installed", return_value=True),
    ):
        yield


def test_all_good(settings, fonts_ok):
    assert ids(settings, {"SHOP_NAME": "한우집", "VAT_RATE": "0.1"}) == []


@pytest.mark.parametrize(
    "invoice, expected",
    [
        ([], ["django_pgpay.E401"]),
        ({"SHOPNAME": "x"}, ["django_pgpay.E401"]),
        ({"VAT_RATE": 0.1}, ["django_pgpay.E402"]),
        ({"VAT_RATE": "1.5"}, ["django_pgpay.E402"]),
    ],
)
def test_bad_invoice_settings(settings, fonts_ok, invoice, expected):
    assert ids(settings, invoice) == expected


def completed(stdout, code=0):
    return subprocess.CompletedProcess(["fc-list"], code, stdout=stdout, stderr="")


def test_no_korean_font_warns(settings):
    with (
        mock.patch.object(pgpay_checks, "weasyprint_installed", return_value=True),
        mock.patch.object(pgpay_checks, "harfbuzz_subset_available", return_value=True),
        mock.patch("subprocess.run", return_value=completed("")) as run,
    ):
        messages = check_invoices()
    assert run.call_args.args[0][:2] == ["fc-list", ":lang=ko"]
    assert [m.id for m in messages] == ["django_pgpay.W401"]
    assert "fonts-nanum" in messages[0].hint


def test_fc_list_missing_warns(settings):
    with (
        mock.patch.object(pgpay_checks, "weasyprint_installed", return_value=True),
        mock.patch.object(pgpay_checks, "harfbuzz_subset_available", return_value=True),
        mock.patch("subprocess.run", side_effect=FileNotFoundError("fc-list")),
    ):
        messages = check_invoices()
    assert [m.id for m in messages] == ["django_pgpay.W401"] and "could not run" in messages[0].msg


def test_font_found_by_fc_list(settings):
    listing = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf: \n"
    with (
        mock.patch.object(pgpay_checks, "weasyprint_installed", return_value=True),
        mock.patch.object(pgpay_checks, "harfbuzz_subset_available", return_value=True),
        mock.patch("subprocess.run", return_value=completed(listing)),
    ):
        assert check_invoices() == []


def test_without_harfbuzz_subset_warns(settings):
    with (
        mock.patch.object(pgpay_checks, "weasyprint_installed", return_value=True),
        mock.patch.object(pgpay_checks, "korean_fonts", return_value=["x.ttf"]),
        mock.patch.dict(sys.modules, {"weasyprint.text.ffi": None}),
        mock.patch.object(pgpay_checks, "_dlopen_any", return_value=None),
    ):
        messages = check_invoices()
    assert [m.id for m in messages] == ["django_pgpay.W402"]
    assert "libharfbuzz-subset0" in messages[0].hint


def test_harfbuzz_detection_follows_weasyprint(settings):
    ffi = mock.Mock(harfbuzz_subset=None)
    with mock.patch.dict(sys.modules, {"weasyprint.text.ffi": ffi}):
        assert harfbuzz_subset_available() is False
    ffi = mock.Mock(harfbuzz_subset=object())
    ffi.harfbuzz.hb_version_atleast.return_value = 1
    with mock.patch.dict(sys.modules, {"weasyprint.text.ffi": ffi}):
        assert harfbuzz_subset_available() is True
    ffi.harfbuzz.hb_version_atleast.return_value = 0  # HarfBuzz < 4.1: WeasyPrint uses fontTools
    with mock.patch.dict(sys.modules, {"weasyprint.text.ffi": ffi}):
        assert harfbuzz_subset_available() is False


def test_without_weasyprint_no_font_checks(settings):
    with (
        mock.patch.object(pgpay_checks, "weasyprint_installed", return_value=False),
        mock.patch("subprocess.run") as run,
    ):
        assert check_invoices() == []
    run.assert_not_called()


def test_this_machine_is_set_up():
    """CI installs fonts-nanum and libharfbuzz-subset0 (scripts/system-deps.sh)."""
    assert pgpay_checks.korean_fonts()
    assert harfbuzz_subset_available()


# --- W403: the seller's details ----------------------------------------------------------


def seller_ids(settings, invoice):
    settings.PGPAY = {**settings.PGPAY, "INVOICE": invoice}
    return [(m.id, m.msg) for m in pgpay_checks.check_invoice_seller()]


def test_missing_seller_details_are_named(settings, fonts_ok):
    assert seller_ids(settings, {}) == [
        (
            "django_pgpay.W403",
            'PGPAY["INVOICE"] lacks the seller\'s SHOP_NAME, BUSINESS_NUMBER, CEO, ADDRESS: PDF invoices would not say who sold.',
        )
    ]
    (only,) = seller_ids(settings, {"SHOP_NAME": "한우집", "BUSINESS_NUMBER": "123-45-67890", "CEO": "홍길동", "ADDRESS": " "})
    assert "ADDRESS" in only[1] and "SHOP_NAME" not in only[1]


def test_complete_seller_details_pass(settings, fonts_ok):
    full = {"SHOP_NAME": "한우집", "BUSINESS_NUMBER": "123-45-67890", "CEO": "홍길동", "ADDRESS": "서울특별시 중구 세종대로 110"}
    assert seller_ids(settings, full) == []


def test_no_seller_warning_without_weasyprint(settings):
    with mock.patch.object(pgpay_checks, "weasyprint_installed", return_value=False):
        assert seller_ids(settings, {}) == []


def test_the_check_runs_with_the_others(settings, fonts_ok):
    from django.core import checks

    settings.PGPAY = {**settings.PGPAY, "INVOICE": {"SHOP_NAME": "한우집"}}
    assert "django_pgpay.W403" in [m.id for m in checks.run_checks(tags=["django_pgpay"])]
