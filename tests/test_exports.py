"""The streamed CSV export (django_pgpay.exports) and ``manage.py pgpay_export``, parsed back."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone, translation

from django_pgpay import exports, payments
from tests.testapp.models import Booking

pytestmark = pytest.mark.django_db

UTC = datetime.timezone.utc


def parse(text: str, *, bom: bool = True) -> list[list[str]]:
    if bom:
        assert text.startswith("\ufeff"), text[:20]
        text = text[1:]
    else:
        assert not text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text, newline="")))


def export(queryset, columns=None, **kwargs) -> str:
    return "".join(exports.iter_csv(queryset, columns, **kwargs))


@pytest.fixture
def paid(pay_booking):
    return pay_booking


def test_header_rows_and_bom(paid):
    booking = paid(buyer_name="김민수", buyer_email="minsu@example.com")
    payments.cancel(booking, Decimal(5000), reason="부분 환불")
    rows = parse(export(Booking.objects.all()))
    assert rows[0] == [
        "order number",
        "order name",
        "items",
        "status",
        "amount",
        "paid amount",
        "cancelled amount",
        "balance",
        "currency",
        "gateway",
        "PG payment id",
        "payment method",
        "buyer name",
        "buyer email",
        "created",
        "paid at",
        "cancelled at",
    ]
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1]))
    booking.refresh_from_db()
    assert row["order number"] == booking.order_number
    assert row["order name"] == f"Order {booking.order_number}"
    assert row["status"] == "Partially cancelled"
    assert (row["amount"], row["paid amount"], row["cancelled amount"], row["balance"], row["currency"]) == (
        "20000", "20000", "5000", "15000", "KRW"
    )  # fmt: skip
    assert row["gateway"] == "Fake PG (for tests)" and row["PG payment id"] == booking.pg_payment_id and row["payment method"] == "Card"
    assert row["items"] == ""  # a booking's one line is its name
    assert (row["buyer name"], row["buyer email"]) == ("김민수", "minsu@example.com")
    assert row["paid at"] and row["cancelled at"]


def test_bom_can_be_turned_off_per_call_and_by_setting(paid, settings):
    paid()
    assert parse(export(Booking.objects.all(), bom=False), bom=False)[0][0] == "order number"
    settings.PGPAY = {**settings.PGPAY, "CSV_BOM": False}
    assert parse(export(Booking.objects.all()), bom=False)[0][0] == "order number"
    assert parse(export(Booking.objects.all(), bom=True))[0][0] == "order number"


@pytest.mark.parametrize(
    "name",
    [
        '=HYPERLINK("http://evil.example","x")',
        "+1+2",
        "-2+3",
        "@SUM(A1:A9)",
        "\tcmd",
        "\rcmd",
        # After spaces or a line break (trimmed by some spreadsheets on import), and full-width forms.
        "  =1+1",
        "\n=1+1",
        "\u3000=1+1",
        '\uff1dHYPERLINK("http://evil.example")',
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
    ],
)
def test_formula_injection_is_neutralised(make_booking, name):
    make_booking(buyer_name=name, order_name=name)
    row = dict(zip(*parse(export(Booking.objects.all()))))
    assert row["buyer name"] == "'" + name
    assert row["order name"] == "'" + name


def test_harmless_text_and_our_numbers_are_left_alone(make_booking):
    make_booking(buyer_name="김-민수", amount=Decimal(0))
    row = dict(zip(*parse(export(Booking.objects.all()))))
    assert row["buyer name"] == "김-민수"
    assert row["amount"] == "0" and row["balance"] == "0"


def test_times_are_in_the_site_time_zone(paid):
    booking = paid()
    moment = datetime.datetime(2026, 1, 1, 15, 0, 0, tzinfo=UTC)  # 2026-01-02 00:00 in Seoul
    Booking.objects.filter(pk=booking.pk).update(paid_at=moment, created=moment)
    row = dict(zip(*parse(export(Booking.objects.all()))))
    assert row["paid at"] == "2026-01-02 00:00:00"
    assert row["created"] == "2026-01-02 00:00:00"
    assert row["cancelled at"] == ""


def test_streaming_response_keeps_the_requests_language_and_time_zone(paid):
    booking = paid()
    moment = datetime.datetime(2026, 1, 1, 15, 0, 0, tzinfo=UTC)
    Booking.objects.filter(pk=booking.pk).update(paid_at=moment)
    with translation.override("ko"), timezone.override(datetime.timezone(datetime.timedelta(hours=-5))):
        response = exports.streaming_response(Booking.objects.all(), filename="orders.csv")
    # Consumed later, as a WSGI server does, with other settings active.
    with translation.override("en"):
        text = b"".join(response.streaming_content).decode("utf-8")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="orders.csv"'
    rows = parse(text)
    row = dict(zip(rows[0], rows[1]))
    assert row["상태"] == "결제 완료"
    assert row["결제 시각"] == "2026-01-01 10:00:00"


def test_orders_that_never_took_money_have_nothing_paid_and_no_balance(make_booking, pg):
    from django_pgpay.exceptions import PaymentDeclined

    make_booking(amount=Decimal(30000))  # READY
    failed = make_booking(amount=Decimal(30000))
    pg.fail_next("confirm", "decline")
    with pytest.raises(PaymentDeclined):
        payments.confirm(failed, payment_id=pg.authorize(failed.order_number, failed.amount), amount=failed.amount)
    waiting = make_booking(amount=Decimal(30000))
    payments.confirm(waiting, payment_id=pg.authorize(waiting.order_number, waiting.amount, virtual_account=True), amount=waiting.amount)
    rows = parse(export(Booking.objects.all(), ["status", "amount", "paid_amount", "balance"]))
    assert sorted(rows[1:]) == [
        ["Awaiting deposit", "30000", "0", "0"],
        ["Awaiting payment", "30000", "0", "0"],
        ["Failed", "30000", "0", "0"],
    ]


@pytest.mark.parametrize("raw", ["카드", "card", "CARD", "신용카드"])
def test_payment_methods_are_one_translated_label(make_booking, raw):
    make_booking(method=raw)
    assert parse(export(Booking.objects.all(), ["method"]))[1] == ["Card"]
    with translation.override("ko"):
        assert parse(export(Booking.objects.all(), ["method"]))[1] == ["카드"]


def test_an_unknown_method_is_kept_as_the_pg_sent_it(make_booking):
    make_booking(method="=weird")
    assert parse(export(Booking.objects.all(), ["method"]))[1] == ["'=weird"]


def test_cart_orders_list_their_items_in_few_queries(django_assert_max_num_queries):
    from tests.testapp.models import CartOrder, Product

    kimchi, tofu = Product.objects.create(name="배추김치", price=Decimal(5000)), Product.objects.create(name="두부", price=Decimal(2000))
    for i in range(30):
        order = CartOrder.objects.create(amount=Decimal(12000), order_name=f"장바구니 {i}")
        order.lines.create(product=kimchi, price=Decimal(5000), quantity=2)
        order.lines.create(product=tofu, price=Decimal(2000), quantity=1)
    with django_assert_max_num_queries(6):
        rows = parse(export(CartOrder.objects.order_by("pk"), ["order_name", "items"], prefetch=("lines__product",)))
    assert rows[1] == ["장바구니 0", "배추김치 ×2; 두부 ×1"] and len(rows) == 31


def test_columns_by_name_field_path_and_column_object(paid):
    paid()
    doubled = exports.Column("double", ("amount",), lambda amount: f"={amount * 2}")
    rows = parse(export(Booking.objects.all(), ["order_number", "seat__table__restaurant__name", doubled]))
    assert rows[0] == ["order number", "Name", "double"]
    assert rows[1][1] == "한우집"
    assert rows[1][2].startswith("'=")  # a Column that is not trusted is guarded


def test_unknown_column_is_refused_with_its_name(paid):
    with pytest.raises(ImproperlyConfigured, match="nope"):
        export(Booking.objects.all(), ["order_number", "nope"])


def test_many_rows_arrive_in_chunks_in_order(make_booking, seat):
    seat.remain = 50
    seat.save()
    for i in range(12):
        make_booking(amount=Decimal(1000 + i))
    chunks = list(exports.iter_csv(Booking.objects.order_by("amount"), ["amount"], bom=False, chunk_size=5))
    rows = parse("".join(chunks), bom=False)
    assert [r[0] for r in rows[1:]] == [str(1000 + i) for i in range(12)]


def test_usd_amounts_keep_cents(make_booking):
    make_booking(amount=Decimal("10.5"), currency="USD")
    row = dict(zip(*parse(export(Booking.objects.all()))))
    assert row["amount"] == "10.50" and row["currency"] == "USD"


# --- manage.py pgpay_export -------------------------------------------------------


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("pgpay_export", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_writes_csv_to_stdout(paid, make_booking):
    booking = paid(buyer_name="이영희")
    make_booking()  # READY
    out, err = run("--model", "testapp.Booking")
    rows = parse(out)
    assert len(rows) == 3 and err == ""
    out, _ = run("--model", "testapp.Booking", "--status", "paid", "--no-bom")
    rows = parse(out, bom=False)
    assert [r[0] for r in rows[1:]] == [booking.order_number]
    assert rows[1][rows[0].index("buyer name")] == "이영희"


def test_command_filters_by_gateway_and_dates(paid):
    old, new = paid(), paid()
    Booking.objects.filter(pk=old.pk).update(created=datetime.datetime(2026, 1, 10, 12, tzinfo=UTC))
    Booking.objects.filter(pk=new.pk).update(created=datetime.datetime(2026, 2, 10, 12, tzinfo=UTC))

    def numbers(*args):
        return [r[0] for r in parse(run("--model", "testapp.Booking", *args)[0])[1:]]

    assert numbers("--since", "2026-02-01") == [new.order_number]
    assert numbers("--until", "2026-01-10") == [old.order_number]  # the whole day counts
    assert numbers("--until", "2026-01-10T00:00") == []
    assert set(numbers("--gateway", "fake")) == {old.order_number, new.order_number}
    # An alias no longer configured still exports its orders; one on no order and not configured is a typo.
    Booking.objects.filter(pk=old.pk).update(gateway="retired")
    assert numbers("--gateway", "retired") == [old.order_number]
    assert set(numbers("--gateway", "retired", "--gateway", "fake")) == {old.order_number, new.order_number}
    with pytest.raises(CommandError, match=r"--gateway fakee: no such gateway in PGPAY\['GATEWAYS'\] \(there: fake\) nor on any order"):
        run("--model", "testapp.Booking", "--gateway", "fakee", "--gateway", "fake")
    with pytest.raises(CommandError, match="--gateway ' '"):
        run("--model", "testapp.Booking", "--gateway", " ")
    assert numbers("--date-field", "paid_at", "--since", "2026-01-01") != []


def test_command_to_a_file_with_progress(paid, tmp_path):
    paid(buyer_name="박지성")
    target = tmp_path / "orders.csv"
    out, err = run("--model", "testapp.Booking", "--output", str(target), "--no-bom")
    assert out == ""
    assert "Exported 1 / 1 orders (100%)" in err
    rows = parse(target.read_text("utf-8"), bom=False)
    assert rows[1][rows[0].index("buyer name")] == "박지성"


def test_command_uses_the_admins_columns(make_booking):
    from tests.testapp.models import CartOrder

    CartOrder.objects.create(amount=Decimal(5000), shipping_address="=cmd|' /C calc'!A0")
    rows = parse(run("--model", "testapp.CartOrder")[0])
    assert rows[0][-1] == "Shipping address"
    assert rows[1][-1] == "'=cmd|' /C calc'!A0"
    assert rows[1][rows[0].index("items")] == f"Order {rows[1][0]} ×1"  # no lines: get_line_items' fallback
    rows = parse(run("--model", "testapp.CartOrder", "--columns", "order_number,amount")[0])
    assert rows[0] == ["order number", "amount"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "several order models"),
        (("--model", "auth.User"), "not a concrete AbstractOrder"),
        (("--model", "testapp.Booking", "--status", "PAYED"), "PAYED"),
        (("--model", "testapp.Booking", "--since", "yesterday"), "--since"),
        (("--model", "testapp.Booking", "--columns", "order_number,bogus"), "bogus"),
        (("--model", "testapp.Booking", "--output", "/nonexistent-dir/x.csv"), "cannot write"),
    ],
)
def test_command_refuses_bad_arguments_clearly(args, message, db):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_a_trusted_numeric_column_keeps_its_minus_sign(make_booking):
    make_booking(amount=Decimal(1500))
    negative = exports.Column("refund", ("amount",), lambda amount: -amount, trusted=True)
    rows = parse(export(Booking.objects.all(), [negative]))
    assert rows[1] == ["-1500.000"]  # a number for the spreadsheet, not a formula


def test_admin_class_can_turn_the_bom_off(admin_client, make_booking, monkeypatch):
    from django.contrib import admin

    booking = make_booking()
    monkeypatch.setattr(admin.site.get_model_admin(Booking), "csv_bom", False)
    response = admin_client.post("/admin/testapp/booking/", {"action": "export_csv", "_selected_action": [booking.pk]})
    text = b"".join(response.streaming_content).decode("utf-8")
    assert parse(text, bom=False)[1][0] == booking.order_number


# --- --output: written beside its name, in place when complete ---------------------


def test_a_failure_mid_export_keeps_the_previous_file_whole(make_booking, tmp_path, monkeypatch):
    """A model's get_line_items raising halfway left FILE truncated: last month's export was gone."""
    from tests.testapp.models import CartOrder

    for n in range(3):
        CartOrder.objects.create(amount=Decimal(5000), order_name=f"장바구니 {n}")
    target = tmp_path / "orders.csv"
    target.write_text("last month's, complete", "utf-8")

    def broken(self):
        raise RuntimeError("get_line_items broke")

    monkeypatch.setattr(CartOrder, "get_line_items", broken)
    with pytest.raises(RuntimeError, match="get_line_items broke"):
        run("--model", "testapp.CartOrder", "--output", str(target), "--chunk-size", "1")
    assert target.read_text("utf-8") == "last month's, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["orders.csv"]  # no .part left behind


def test_a_complete_export_replaces_the_file_with_the_usual_permissions(paid, tmp_path):
    import os
    import stat

    booking = paid()
    target = tmp_path / "orders.csv"
    target.write_text("last month's", "utf-8")
    umask = os.umask(0o022)
    try:
        run("--model", "testapp.Booking", "--output", str(target), "--no-progress")
    finally:
        os.umask(umask)
    assert [r[0] for r in parse(target.read_text("utf-8"))[1:]] == [booking.order_number]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not the temporary file's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["orders.csv"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing-dir/x.csv", "cannot write .*missing-dir/x.csv: No such file or directory"), (".", "cannot write .*: is a folder")],
)
def test_an_unwritable_target_is_refused_before_exporting(paid, tmp_path, monkeypatch, name, message):
    paid()
    read = []
    monkeypatch.setattr(exports, "write_csv", lambda *args, **kwargs: read.append(args))
    err = io.StringIO()
    with pytest.raises(CommandError, match=message):
        call_command("pgpay_export", "--model", "testapp.Booking", "--output", str(tmp_path / name), stdout=io.StringIO(), stderr=err)
    assert read == [] and "Exported" not in err.getvalue()  # refused before the first row is read
    assert list(tmp_path.iterdir()) == []


# --- options given with no value, empty lists, reversed ranges ----------------------


@pytest.mark.parametrize("columns", [",", "", " , "])
def test_an_empty_column_list_is_refused(paid, columns):
    """``--columns ","`` wrote an empty header and one blank line per order."""
    paid()
    with pytest.raises(CommandError, match=rf"^--columns {columns!r}: name at least one column"):
        run("--model", "testapp.Booking", "--columns", columns)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--status", ""), r"^--status '': give one or more of READY, "),
        (("--status", ","), r"^--status ',': give one or more of READY, "),
        (("--status", "PAID", "--status", " "), r"^--status ' ': give one or more of"),
        (("--gateway", "fake", "--gateway", ""), r"^--gateway '': no such gateway"),
        (("--since", ""), r"^--since '': use a date"),
        (("--until", " "), r"^--until ' ': use a date"),
        (("--output", ""), r"^--output '': give a file name"),
    ],
)
def test_an_option_given_without_a_value_is_refused_not_read_as_every_order(paid, args, message):
    """A cron line with an unset variable (``--status "$STATUS"``) exported every order."""
    paid()
    with pytest.raises(CommandError, match=message):
        run("--model", "testapp.Booking", *args)


def test_an_empty_model_is_refused(paid):
    with pytest.raises(CommandError, match=r"^--model '': give APP.MODEL"):
        run("--model", "")


def test_a_reversed_range_is_refused_not_an_empty_file(paid):
    booking = paid()
    Booking.objects.filter(pk=booking.pk).update(created=datetime.datetime(2026, 1, 10, 12, tzinfo=UTC))
    with pytest.raises(CommandError, match=r"^--until '2020-01-01' is before --since '2030-01-01'"):
        run("--model", "testapp.Booking", "--since", "2030-01-01", "--until", "2020-01-01")
    with pytest.raises(CommandError, match="is before --since"):
        run("--model", "testapp.Booking", "--since", "2026-01-10T22:00", "--until", "2026-01-10T21:59")

    def numbers(*args):
        return [r[0] for r in parse(run("--model", "testapp.Booking", *args)[0])[1:]]

    # One day, and from a moment of a day to the end of that day, are ranges.
    assert numbers("--since", "2026-01-10", "--until", "2026-01-10") == [booking.order_number]
    assert numbers("--since", "2026-01-10T20:00", "--until", "2026-01-10") == [booking.order_number]
    assert numbers("--since", "2026-01-10T21:00", "--until", "2026-01-10T21:00") == [booking.order_number]
