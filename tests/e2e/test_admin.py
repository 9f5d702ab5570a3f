"""The example project's admin in Chromium: select bookings -> CSV; refund one in full and another in part.

Two buyers pay through the sandbox (Toss); a superuser then works in the
admin, in Korean, as a shop's staff does. Screenshots go to $PGPAY_ARTIFACTS_DIR/e2e.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from .pages import admin_refund_part, book_until_sandbox, first_free_seat, staff_page

pytestmark = pytest.mark.e2e


def pay_a_booking(open_page, restaurant_id: int) -> str:
    page = open_page()
    seat_id, _free = first_free_seat(page, restaurant_id)
    order_number = book_until_sandbox(page, seat_id)
    page.click("#pay")
    page.wait_for_url(re.compile(r".*/restaurants/bookings/.*"))
    expect(page.locator(f"#booking-{order_number}")).to_have_attribute("data-status", "PAID")
    page.close()
    return order_number


def test_admin_exports_csv_and_refunds_in_full_and_in_part(open_page, browser, server, shots):
    full, part = pay_a_booking(open_page, 1), pay_a_booking(open_page, 2)
    ids = {n: server.value("SELECT id FROM restaurants_booking WHERE order_number = ?", n) for n in (full, part)}
    page, staff_id = staff_page(browser, server, accept_downloads=True)
    context = page.context
    try:
        # Select both -> CSV.
        page.goto("/admin/restaurants/booking/")
        for pk in ids.values():
            page.check(f'input.action-select[value="{pk}"]')
        page.select_option("select[name=action]", "export_csv")
        page.screenshot(path=shots / "admin-1-changelist-ko.png", full_page=True)
        with page.expect_download() as download:
            page.click("button[name=index]")
        data = open(download.value.path(), "rb").read()
        assert data.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        assert rows[0][:3] == ["주문번호", "주문명", "상태"]
        by_number = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
        assert set(by_number) == {full, part}
        assert by_number[full]["상태"] == "결제 완료"
        restaurant = server.value("SELECT name FROM restaurants_restaurant WHERE id = 1")
        assert by_number[full]["식당"] == restaurant and re.search("[가-힣]", restaurant)

        # Select both -> one merged PDF, one invoice per order, Hangul in its text.
        page.goto("/admin/restaurants/booking/")
        for pk in ids.values():
            page.check(f'input.action-select[value="{pk}"]')
        page.select_option("select[name=action]", "invoice_pdf")
        with page.expect_download() as download:
            page.click("button[name=index]")
        pdf_path = shots / "admin-invoices-merged.pdf"
        download.value.save_as(pdf_path)
        pages = PdfReader(pdf_path).pages
        assert len(pages) == 2
        texts = [p.extract_text() for p in pages]
        assert sorted(n for n in ids for t in texts if n in t) == sorted(ids)
        assert all("영수증" in t and "공급가액" in t for t in texts), texts
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf_path), str(shots / "admin-invoices-merged")], check=True)

        # Refund one in full: the action's confirmation page, then the ledger.
        page.goto("/admin/restaurants/booking/")
        page.check(f'input.action-select[value="{ids[full]}"]')
        page.select_option("select[name=action]", "refund_in_full")
        page.click("button[name=index]")
        expect(page.locator("#pgpay-refundable")).to_contain_text(full)
        page.fill("input[name=reason]", "가게 사정으로 예약 취소")
        page.screenshot(path=shots / "admin-2-refund-confirmation-ko.png", full_page=True)
        page.click("input[type=submit]")
        expect(page.locator("ul.messagelist")).to_contain_text("주문 1건을 전액 환불했습니다.")
        assert server.order("restaurants_booking", full)["status"] == "CANCELED"

        # Refund the other in part from its order page.
        amount = server.order("restaurants_booking", part)["amount"]
        admin_refund_part(page, "restaurants/booking", ids[part], 5000, "일부 메뉴 품절")
        expect(page.locator("ul.messagelist")).to_contain_text("5,000 KRW")
        expect(page.locator("#pgpay-ledger")).to_contain_text("일부 메뉴 품절")
        expect(page.locator("#pgpay-ledger")).to_contain_text("e2e-staff")
        page.screenshot(path=shots / "admin-3-order-page-partial-refund-ko.png", full_page=True)
        order = server.order("restaurants_booking", part)
        assert order["status"] == "PARTIAL_CANCELED"
        assert float(order["canceled_amount"]) == 5000 and float(order["amount"]) == float(amount)

        # Both refunds are in the ledger with the staff user and the reason.
        ledger = server.query(
            "SELECT o.order_number, t.amount, t.actor_id, t.reason, t.source FROM restaurants_bookingtransaction t "
            "JOIN restaurants_booking o ON o.id = t.order_id WHERE t.kind = 'cancel' AND t.status = 'succeeded' ORDER BY t.id"
        )
        assert [(n, float(a), str(actor), r, s) for n, a, actor, r, s in ledger if n in ids] == [
            (full, float(server.order("restaurants_booking", full)["amount"]), staff_id, "가게 사정으로 예약 취소", "staff"),
            (part, 5000.0, staff_id, "일부 메뉴 품절", "staff"),
        ]
    finally:
        context.close()
