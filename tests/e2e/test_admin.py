"""The example project's admin in Chromium at 1280 px, in Korean and in English, as a shop's staff uses it.

Orders in every state are made once per module through the sandbox (``admin_seed.SEED``);
then a superuser works in the admin: the lists (badges, search, date ranges), the order
page, a refund through its confirmation step (double-clicked), the full-refund action
with its required reason, "reconcile now" after a cancel made at the PG, a webhook
delivery that failed and is re-processed, the settlement page and its CSV, and the CSV
and merged PDF exports. Every page is checked for what staff complained about: nothing
runs off the right edge, Korean never wraps one syllable per line, no raw decimals.
Screenshots go to $PGPAY_ARTIFACTS_DIR/e2e/admin-*.png.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import subprocess
from decimal import Decimal

import pytest
import requests
from playwright.sync_api import expect
from pypdf import PdfReader

from .admin_seed import PAY_ONE, SEED
from .pages import book_until_sandbox, first_free_seat, staff_page

pytestmark = pytest.mark.e2e

LOCALES = ["ko-KR", "en-US"]
WIDTH = 1280

#: Korean and English words the checks look for.
WORDS = {
    "ko-KR": {"paid": "결제 완료", "partial": "부분 취소", "won": "원", "refunded": "주문 1건을 전액 환불했습니다."},
    "en-US": {"paid": "Paid", "partial": "Partially cancelled", "won": "₩", "refunded": "1 order refunded in full."},
}


@pytest.fixture(scope="module")
def seeded(server) -> dict:
    """Orders in every state (see admin_seed.SEED): name -> {model, id, number, key}."""
    return json.loads(server.manage("shell", "-v", "0", "-c", SEED, timeout=180).stdout.strip().splitlines()[-1])


def pay_one(server, name: str = "한지민", phone: str = "010-9999-0000") -> dict:
    """One more booking paid through Toss, once the webhook of its payment has been applied.

    (Toss's webhooks are verified by a lookup, so a late one would report whatever the
    PG says by then, a cancel made meanwhile included.)
    """
    one = json.loads(server.manage("shell", "-v", "0", "-c", PAY_ONE % (name, phone)).stdout.strip().splitlines()[-1])
    server.wait_for(
        "SELECT COUNT(*) > 0 FROM django_pgpay_webhookevent WHERE order_number = ? AND processed = 1", one["number"], expect=1, timeout=20
    )
    return one


@pytest.fixture
def admin_page(browser, server):
    """``admin_page(locale)``: an admin page at 1280 px in that language (closed after the test)."""
    contexts = []

    def make(locale: str = "ko-KR", **options):
        page, _staff_id = staff_page(browser, server, locale, width=WIDTH, **options)
        contexts.append(page.context)
        return page

    yield make
    for context in contexts:
        context.close()


def shot(page, shots, name: str, locale: str) -> None:
    page.screenshot(path=shots / f"admin-{name}-{locale[:2]}.png", full_page=True)


def assert_fits(page) -> None:
    """Nothing runs off the right edge; no table scrolls sideways; Korean is not one syllable per line."""
    sizes = page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth,
            tables: [...document.querySelectorAll('.results, #content-main table, .pgpay-card, #content-main')]
                .filter(el => el.scrollWidth > el.clientWidth + 1)
                .map(el => `${el.id || el.className}: ${el.scrollWidth} > ${el.clientWidth} px`),
            narrow: [...document.querySelectorAll('#result_list td, #result_list th, .pgpay-facts th, .pgpay-facts td,'
                        + ' .pgpay-event-meta, .pgpay-figures dt, .pgpay-table td, .pgpay-table th, .pgpay-banner')]
                .filter(el => {
                    const text = el.textContent.trim();
                    const size = parseFloat(getComputedStyle(el).fontSize);
                    const box = el.getBoundingClientRect();
                    return text.length > 3 && box.width > 0 && box.width < 2.5 * size;
                })
                .map(el => el.textContent.trim().slice(0, 30)),
        })"""
    )
    assert sizes["page"] <= WIDTH, f"the page is {sizes['page']} px wide"
    assert sizes["tables"] == [], f"tables scroll sideways: {sizes['tables']}"
    assert sizes["narrow"] == [], f"text squeezed into a column one or two characters wide: {sizes['narrow']}"
    text = page.locator("#content-start").inner_text()  # the messages and the page
    assert not re.search(r"\d\.000\b", text), "a raw decimal (42000.000)"


# --- lists --------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_lists_fit_and_find(admin_page, server, seeded, shots, locale):
    page = admin_page(locale)
    words = WORDS[locale]
    page.goto("/admin/restaurants/booking/")
    expect(page.locator("#result_list .pgpay-badge-green").first).to_have_text(words["paid"])
    expect(page.locator("#result_list .pgpay-badge-orange").first).to_have_text(words["partial"])
    assert page.locator("#result_list th.column-currency").count() == 0  # one currency: no column for it
    last = page.locator("#result_list th").last.bounding_box()
    assert last["x"] + last["width"] <= WIDTH
    assert_fits(page)
    shot(page, shots, "1-bookings", locale)

    # Search: an order number's start, a phone number without hyphens, a restaurant (what was sold).
    paid = seeded["paid"]
    page.fill("#searchbar", paid["number"][:12])
    page.press("#searchbar", "Enter")
    expect(page.locator(f"#result_list a:has-text('{paid['number']}')")).to_be_visible()
    page.goto("/admin/restaurants/booking/?q=01012345678")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody")).to_contain_text(paid["number"])
    # The date range: today has them all; a day long ago none.
    page.goto("/admin/restaurants/booking/")
    page.locator(".pgpay-date-range").first.locator("a").nth(1).click()  # "Today"
    expect(page).to_have_url(re.compile(r"created__range__gte=\d{4}-\d\d-\d\d"))
    expect(page.locator("#result_list tbody tr").nth(5)).to_be_visible()  # the six seeded bookings at least
    page.goto("/admin/restaurants/booking/?created__range__gte=2020-01-01&created__range__lte=2020-01-31")
    expect(page.locator("#result_list")).to_have_count(0)

    page.goto("/admin/shop/cartorder/?q=" + ("콜롬비아" if locale == "ko-KR" else "원두"))
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody")).to_contain_text(seeded["cart_partial"]["number"])
    page.goto("/admin/shop/cartorder/")
    assert_fits(page)
    shot(page, shots, "2-cart-orders", locale)

    page.goto("/admin/django_pgpay/webhookevent/")
    expect(page.locator("#result_list .pgpay-badge-green").first).to_be_visible()
    shot(page, shots, "3-webhook-deliveries", locale)  # before the check, to see what did not fit
    assert_fits(page)


# --- the order page -----------------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "name"), [("ko-KR", "partial"), ("en-US", "cart_partial"), ("ko-KR", "waiting")])
def test_order_page(admin_page, server, seeded, shots, locale, name):
    order = seeded[name]
    page = admin_page(locale)
    page.goto(f"/admin/{order['model']}/{order['id']}/change/")
    expect(page.locator("#pgpay-status")).to_be_visible()
    balance = page.locator("#pgpay-balance").inner_text()
    assert WORDS[locale]["won"] in balance and ".000" not in balance
    if name == "waiting":  # awaiting a deposit: nothing paid yet, and when the account expires
        assert balance.startswith(("0", "₩0"))
        expect(page.locator("#pgpay-payment")).to_contain_text("만료 시각")
        # Nothing to refund: the panel closes the account, with no amount to type.
        expect(page.locator("#pgpay-refund h2")).to_have_text("가상계좌 닫기")
        expect(page.locator("#pgpay-refund-form #id_amount")).to_have_count(0)
    else:
        expect(page.locator("#pgpay-ledger li")).not_to_have_count(0)
        expect(page.locator("#pgpay-deliveries")).to_be_visible()
        expect(page.locator("#pgpay-refund-form #id_amount")).to_have_value("")  # never pre-filled
    assert_fits(page)
    shot(page, shots, f"4-order-page-{name}", locale)


def test_the_order_page_and_the_settlement_fit_a_phone(browser, server, seeded, shots):
    # A browser walk at 390 px: the order page was 553 px wide (its webhook deliveries' table) and
    # the settlement 822 px, the admin's header clipped. Their tables now scroll in place.
    page, _staff = staff_page(browser, server, "ko-KR", width=390)
    try:
        order = seeded["cart_partial"]
        for name, url in (
            ("order-page", f"/admin/{order['model']}/{order['id']}/change/"),
            ("settlement", "/admin/restaurants/booking/settlement/"),
        ):
            page.goto(url)
            expect(page.locator("#content")).to_be_visible()
            page.screenshot(path=shots / f"admin-phone-{name}-ko.png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name}: the page is {width} px wide on a 390 px phone"
    finally:
        page.context.close()


# --- refunds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_refund_goes_through_its_confirmation_once(admin_page, server, seeded, shots, locale):
    order = seeded["paid"] if locale == "ko-KR" else seeded["cart_paid"]
    table = "restaurants_booking" if order["model"].startswith("restaurants") else "shop_cartorder"
    ledger = "restaurants_bookingtransaction" if table == "restaurants_booking" else "shop_carttransaction"
    page = admin_page(locale)
    page.goto(f"/admin/{order['model']}/{order['id']}/change/")
    page.fill("#id_amount", "3,000")
    page.fill("#id_reason", "반찬 하나 빠짐" if locale == "ko-KR" else "one item missing")
    page.click("#pgpay-refund-form button[type=submit]")
    # Step two: the amount and the balance after it; nothing refunded yet.
    expect(page.locator("#pgpay-confirm-amount")).to_contain_text("3,000")
    before = Decimal(str(server.order(table, order["number"])["amount"]))
    expect(page.locator("#pgpay-balance-after")).to_contain_text(f"{before - 3000:,.0f}")
    assert float(server.order(table, order["number"])["canceled_amount"]) == 0
    assert_fits(page)
    shot(page, shots, "5-refund-confirmation", locale)
    page.dblclick("#pgpay-confirm-button")  # a double click refunds once
    expect(page.locator("ul.messagelist li")).to_contain_text("3,000")
    expect(page.locator("#pgpay-ledger")).to_contain_text("3,000")
    count = server.value(
        f"SELECT COUNT(*) FROM {ledger} t JOIN {table} o ON o.id = t.order_id WHERE o.order_number = ? AND t.kind = 'cancel'",
        order["number"],
    )
    assert count == 1
    assert float(server.order(table, order["number"])["canceled_amount"]) == 3000
    shot(page, shots, "6-order-page-after-refund", locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_full_refund_action_requires_a_reason(admin_page, server, shots, locale):
    one = pay_one(server, "윤서연" if locale == "ko-KR" else "Sam Lee")
    page = admin_page(locale)
    page.goto("/admin/restaurants/booking/")
    page.check(f'input.action-select[value="{one["id"]}"]')
    page.select_option("select[name=action]", "refund_in_full")
    page.click("button[name=index]")
    expect(page.locator("#pgpay-refundable")).to_contain_text(one["number"])
    expect(page.locator("label[for=id_reason] .pgpay-required")).to_be_visible()
    assert page.get_attribute("#id_reason", "required") is not None
    page.click("#pgpay-bulk-refund-form input[type=submit]")  # no reason: refused, nothing refunded
    expect(page.locator(".errornote")).to_be_visible()
    assert server.order("restaurants_booking", one["number"])["status"] == "PAID"
    page.fill("#id_reason", "가게 사정으로 예약 취소" if locale == "ko-KR" else "kitchen closed")
    assert_fits(page)
    shot(page, shots, "7-full-refund-confirmation", locale)
    page.click("#pgpay-bulk-refund-form input[type=submit]")
    expect(page.locator("ul.messagelist")).to_contain_text(WORDS[locale]["refunded"])
    assert server.order("restaurants_booking", one["number"])["status"] == "CANCELED"


# --- reconcile now and re-process ---------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_reconcile_now_finds_a_cancel_made_at_the_pg(admin_page, server, shots, locale):
    one = pay_one(server)
    server.sandbox("POST", "faults", pg="toss", operation="webhook", kind="drop", match=one["key"], times=100)
    server.sandbox("POST", "toss/cancel", payment_key=one["key"], amount=7000)  # in Toss's dashboard; no webhook
    page = admin_page(locale)
    page.goto(f"/admin/{one['model']}/{one['id']}/change/")
    expect(page.locator("#pgpay-status")).to_have_text(WORDS[locale]["paid"])
    page.click("#pgpay-reconcile")
    expect(page.locator("#pgpay-status")).to_have_text(WORDS[locale]["partial"])
    expect(page.locator("ul.messagelist li")).to_contain_text(one["number"])
    expect(page.locator("#pgpay-refunded")).to_contain_text("7,000")
    expect(page.locator("#pgpay-ledger li.pgpay-kind-sync")).to_have_count(1)
    assert_fits(page)
    shot(page, shots, "8-reconcile-now", locale)
    assert float(server.order("restaurants_booking", one["number"])["canceled_amount"]) == 7000


def failed_delivery(server, one: dict) -> int:
    """A cancel at the PG whose webhook reaches the shop while the PG's lookups fail: stored, not applied."""
    server.sandbox("POST", "faults", pg="toss", operation="webhook", kind="drop", match=one["key"], times=100)
    server.sandbox("POST", "toss/cancel", payment_key=one["key"], amount=4000)
    server.sandbox("POST", "faults", pg="toss", operation="lookup", kind="error_before", match=one["key"], times=5)
    body = {
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": datetime.datetime.now().isoformat(timespec="seconds") + "+09:00",
        "data": {"paymentKey": one["key"], "orderId": one["number"], "status": "PARTIAL_CANCELED"},
    }
    reply = requests.post(f"{server.url}/pay/toss/webhook/", json=body, timeout=30)
    assert reply.status_code == 503  # Toss would deliver it again; we re-process it from the admin instead
    requests.delete(
        f"{server.url}/sandbox/control/faults", params={"pg": "toss"}, headers={"X-Sandbox-Control": "1"}, timeout=10
    ).raise_for_status()
    event_id = server.value("SELECT id FROM django_pgpay_webhookevent WHERE order_number = ? AND status = 'failed'", one["number"])
    assert event_id and server.order("restaurants_booking", one["number"])["status"] == "PAID"
    return event_id


def test_reprocess_a_failed_delivery_from_the_list_in_korean(admin_page, server, shots):
    one = pay_one(server)
    event_id = failed_delivery(server, one)
    page = admin_page("ko-KR")
    page.goto("/admin/django_pgpay/webhookevent/?processed__exact=0")
    expect(page.locator("#result_list .pgpay-badge-red").first).to_have_text("실패")
    shot(page, shots, "9-webhook-failed", "ko-KR")
    page.check(f'input.action-select[value="{event_id}"]')
    page.select_option("select[name=action]", "reprocess")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist")).to_contain_text("웹훅 1건을 재처리해 반영했습니다.")
    assert server.value("SELECT processed FROM django_pgpay_webhookevent WHERE id = ?", event_id) == 1
    assert server.order("restaurants_booking", one["number"])["status"] == "PARTIAL_CANCELED"
    page.goto(f"/admin/django_pgpay/webhookevent/{event_id}/history/")
    expect(page.locator("#change-history")).to_contain_text("Re-processed: HTTP 200")
    page.goto("/admin/django_pgpay/webhookevent/")
    assert_fits(page)
    shot(page, shots, "10-webhook-reprocessed", "ko-KR")


def test_reprocess_a_failed_delivery_from_the_order_page_in_english(admin_page, server, shots):
    one = pay_one(server, "Jordan Kim", "010-8888-0000")
    failed_delivery(server, one)
    page = admin_page("en-US")
    page.goto(f"/admin/{one['model']}/{one['id']}/change/")
    expect(page.locator("#pgpay-banners .pgpay-banner-error")).to_contain_text("failed")
    assert_fits(page)
    shot(page, shots, "9-order-page-failed-delivery", "en-US")
    page.click("#pgpay-deliveries .pgpay-reprocess")
    expect(page.locator("ul.messagelist li.success")).to_contain_text("re-processed and applied")
    expect(page.locator("#pgpay-status")).to_have_text("Partially cancelled")
    expect(page.locator("#pgpay-banners")).to_have_count(0)
    shot(page, shots, "10-order-page-reprocessed", "en-US")


# --- settlement --------------------------------------------------------------------------------


def ledger_today(server) -> dict[str, Decimal]:
    """Today's succeeded rows of both ledgers (Seoul), summed by kind, read from the database."""
    sums = {"confirm": Decimal(0), "cancel": Decimal(0), "sync": Decimal(0), "compensate": Decimal(0)}
    today = server.value("SELECT date('now', '+9 hours')")
    for table in ("restaurants_bookingtransaction", "shop_carttransaction"):
        for kind, amount in server.query(
            f"SELECT kind, amount FROM {table} WHERE status = 'succeeded' AND date(completed_at, '+9 hours') = ?", today
        ):
            if kind in sums:
                sums[kind] += Decimal(str(amount))
    return sums


@pytest.mark.parametrize("locale", LOCALES)
def test_settlement_equals_the_ledger(admin_page, server, seeded, shots, locale):
    page = admin_page(locale, accept_downloads=True)
    page.goto("/admin/restaurants/booking/")
    page.click("#pgpay-settlement-link")
    page.locator(".pgpay-quick a").first.click()  # today
    expect(page.locator("#pgpay-settlement-totals")).to_be_visible()
    sums = ledger_today(server)
    net = sums["confirm"] - sums["cancel"] - sums["sync"]
    total = page.locator('#pgpay-settlement-totals dl[data-currency="KRW"]')
    expect(total.locator(".pgpay-total-paid")).to_contain_text(f"{sums['confirm']:,.0f}")
    expect(total.locator(".pgpay-total-net")).to_contain_text(f"{net:,.0f}")
    assert_fits(page)
    shot(page, shots, "11-settlement", locale)

    with page.expect_download() as download:
        page.click("#pgpay-settlement-csv")
    text = open(download.value.path(), encoding="utf-8-sig").read()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    assert header[0] == ("날짜" if locale == "ko-KR" else "date")
    column = header.index("순매출" if locale == "ko-KR" else "net")
    assert sum(Decimal(row[column]) for row in rows[1:] if row[3] == "KRW") == net


# --- CSV and invoices of the selection -----------------------------------------------------------


def pay_a_booking(open_page, restaurant_id: int) -> str:
    page = open_page()
    seat_id, _free = first_free_seat(page, restaurant_id)
    order_number = book_until_sandbox(page, seat_id)
    page.click("#pay")
    page.wait_for_url(re.compile(r".*/restaurants/bookings/.*"))
    expect(page.locator(f"#booking-{order_number}")).to_have_attribute("data-status", "PAID")
    page.close()
    return order_number


def test_admin_exports_csv_and_invoices_of_bookings_paid_in_the_browser(open_page, admin_page, server, shots):
    numbers = [pay_a_booking(open_page, 1), pay_a_booking(open_page, 2)]
    ids = {n: server.value("SELECT id FROM restaurants_booking WHERE order_number = ?", n) for n in numbers}
    page = admin_page("ko-KR", accept_downloads=True)
    # Select both -> CSV.
    page.goto("/admin/restaurants/booking/")
    for pk in ids.values():
        page.check(f'input.action-select[value="{pk}"]')
    page.select_option("select[name=action]", "export_csv")
    with page.expect_download() as download:
        page.click("button[name=index]")
    data = open(download.value.path(), "rb").read()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0][:4] == ["주문번호", "주문명", "상품", "상태"]
    by_number = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert set(by_number) == set(numbers)
    assert {row["상태"] for row in by_number.values()} == {"결제 완료"}
    assert {row["결제 수단"] for row in by_number.values()} == {"카드"}
    assert {row["결제대행사"] for row in by_number.values()} == {"토스페이먼츠"}  # the PG's name in Korean
    restaurant = server.value("SELECT name FROM restaurants_restaurant WHERE id = 1")
    assert restaurant in {row["식당"] for row in by_number.values()} and re.search("[가-힣]", restaurant)

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
    assert all("영수증" in t and "공급가액" in t and "카드" in t for t in texts), texts
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf_path), str(shots / "admin-invoices-merged")], check=True)
