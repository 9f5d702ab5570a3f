import pytest
from django.core import checks
from django.db import DatabaseError, connection

from django_pgpay.checks import (
    check_mysql_charset,
    check_order_models,
    check_settings,
    check_sqlite_transactions,
    mysql_charset_warnings,
    sqlite_transaction_warnings,
)
from django_pgpay.conf import get_gateway
from django_pgpay.exceptions import ConfigurationError

FAKE = "django_pgpay.gateways.fake.FakeGateway"


def messages(settings, value):
    settings.PGPAY = value
    return [(m.id, m.msg) for m in check_settings()]


def test_valid_settings_pass(settings):
    assert messages(settings, {"DEFAULT_GATEWAY": "fake", "GATEWAYS": {"fake": {"CLASS": FAKE}}}) == []


@pytest.mark.parametrize(
    "value, expected",
    [
        ([], ("django_pgpay.E001", "PGPAY must be a dict.")),
        ({"GATEWAYS": []}, ("django_pgpay.E001", 'PGPAY["GATEWAYS"] must be a dict of alias -> {"CLASS": ..., "OPTIONS": {...}}.')),
        ({"GATEWAYS": {"toss": {}}}, ("django_pgpay.E002", 'PGPAY["GATEWAYS"][\'toss\']["CLASS"] is missing.')),
        (
            {"GATEWAYS": {"Toss!": {"CLASS": FAKE}}},
            ("django_pgpay.E002", "PGPAY[\"GATEWAYS\"]['Toss!']: aliases are 1-32 of a-z, 0-9, '-', '_'."),
        ),
        ({"GATEWAYS": {"x": {"CLASS": "nope.Nope"}}}, ("django_pgpay.E002", None)),
        (
            {"GATEWAYS": {"x": {"CLASS": "django_pgpay.money.MoneyError"}}},
            ("django_pgpay.E002", "PGPAY[\"GATEWAYS\"]['x'][\"CLASS\"] = 'django_pgpay.money.MoneyError' is not a BaseGateway subclass."),
        ),
        ({"GATEWAYS": {"x": {"CLASS": FAKE, "OPTIONS": []}}}, ("django_pgpay.E002", 'PGPAY["GATEWAYS"][\'x\']["OPTIONS"] must be a dict.')),
        (
            {"DEFAULT_GATEWAY": "toss", "GATEWAYS": {"x": {"CLASS": FAKE}}},
            ("django_pgpay.E003", 'PGPAY["DEFAULT_GATEWAY"] = \'toss\' is not a key of PGPAY["GATEWAYS"].'),
        ),
        (
            {"GATEWAYS": {"a": {"CLASS": FAKE}, "b": {"CLASS": FAKE}}},
            ("django_pgpay.E003", 'PGPAY["DEFAULT_GATEWAY"] is not set and there are several gateways.'),
        ),
        ({"CURRENCY": "WON", "GATEWAYS": {}}, None),
        ({"CURRENCY": "W1N", "GATEWAYS": {}}, ("django_pgpay.E005", "PGPAY[\"CURRENCY\"] = 'W1N' is not an ISO 4217 code.")),
        ({"ORDER_NUMBER_PREFIX": "shop#", "GATEWAYS": {}}, ("django_pgpay.E006", None)),
        (
            {"READY_TIMEOUT": "30", "GATEWAYS": {}},
            ("django_pgpay.E008", 'PGPAY["READY_TIMEOUT"] must be a number of seconds from 0 to 315360000 (ten years).'),
        ),
        # NaN, infinity and a deadline past year 9999 failed at the first checkout (ValueError, OverflowError)
        ({"READY_TIMEOUT": float("nan"), "GATEWAYS": {}}, ("django_pgpay.E008", None)),
        ({"IN_FLIGHT_TIMEOUT": float("inf"), "GATEWAYS": {}}, ("django_pgpay.E008", None)),
        ({"READY_TIMEOUT": 10**12, "GATEWAYS": {}}, ("django_pgpay.E008", None)),
        ({"READY_TIMEOUT": 315360000, "GATEWAYS": {}}, None),
        # a key that is not a setting is ignored in silence: named, with the one meant
        (
            {"READY_TIMOUT": 60, "GATEWAYS": {}},
            ("django_pgpay.E009", "PGPAY['READY_TIMOUT'] is not a setting of django-pgpay: it would be ignored."),
        ),
        ({"GATEWAY": {"fake": {"CLASS": FAKE}}}, ("django_pgpay.E009", None)),
        # "False" from the environment is true: the sandbox would serve without DEBUG
        ({"SANDBOX_ALLOW_WITHOUT_DEBUG": "False", "GATEWAYS": {}}, ("django_pgpay.E010", None)),
        ({"CSV_BOM": 0, "GATEWAYS": {}}, ("django_pgpay.E010", 'PGPAY["CSV_BOM"] = 0 must be True or False.')),
        ({"CSV_BOM": False, "SANDBOX_ALLOW_WITHOUT_DEBUG": True, "GATEWAYS": {}}, None),
        ({"BACKGROUND_EXPORT_ROWS": "20k", "GATEWAYS": {}}, ("django_pgpay.E011", None)),
        ({"BACKGROUND_INVOICES": -1, "GATEWAYS": {}}, ("django_pgpay.E011", None)),
        ({"BACKGROUND_INVOICES": None, "BACKGROUND_EXPORT_ROWS": 0, "GATEWAYS": {}}, None),
    ],
)
def test_misconfiguration_names_the_key(settings, value, expected):
    found = messages(settings, value)
    if expected is None:
        assert found == []
        return
    assert len(found) == 1, found
    assert found[0][0] == expected[0]
    if expected[1] is not None:
        assert found[0][1] == expected[1]


def test_missing_pgpay_is_a_warning(settings):
    del settings.PGPAY
    assert [m.id for m in check_settings()] == ["django_pgpay.W001"]


def test_required_options_are_named(settings):
    from django_pgpay.gateways.fake import FakeGateway

    class KeyedGateway(FakeGateway):
        required_options = ("SECRET_KEY",)

    import tests.test_checks as module

    module.KeyedGateway = KeyedGateway
    found = messages(settings, {"GATEWAYS": {"toss": {"CLASS": "tests.test_checks.KeyedGateway", "OPTIONS": {"SECRET_KEY": ""}}}})
    assert found == [("django_pgpay.E004", "PGPAY[\"GATEWAYS\"]['toss'][\"OPTIONS\"]['SECRET_KEY'] is not set.")]


def test_gateway_errors_name_the_key(settings):
    settings.PGPAY = {"GATEWAYS": {"fake": {"CLASS": FAKE}}, "DEFAULT_GATEWAY": "fake"}
    with pytest.raises(ConfigurationError, match=r"PGPAY\[\"GATEWAYS\"\]\['toss'\] is not configured"):
        get_gateway("toss")
    with pytest.raises(ConfigurationError, match=r"\[\"OPTIONS\"\]\['SECRET_KEY'\] is not set"):
        get_gateway("fake").option("SECRET_KEY")


def test_order_models_need_a_ledger(db):
    assert check_order_models() == []


def test_settings_are_read_at_call_time(settings):
    settings.PGPAY = {"GATEWAYS": {"one": {"CLASS": FAKE}}, "DEFAULT_GATEWAY": "one"}
    first = get_gateway()
    assert first.alias == "one"
    settings.PGPAY = {"GATEWAYS": {"two": {"CLASS": FAKE}}, "DEFAULT_GATEWAY": "two"}
    assert get_gateway().alias == "two"


def test_django_check_command_runs_clean():
    assert [m for m in checks.run_checks(tags=["django_pgpay"]) if m.level >= checks.ERROR] == []


@pytest.mark.parametrize(
    "options, warned",
    [
        ({}, True),  # startproject's SQLite: deferred transactions
        ({"transaction_mode": "DEFERRED"}, True),
        ({"transaction_mode": "IMMEDIATE", "timeout": 20}, False),
        ({"transaction_mode": "immediate"}, False),
        ({"transaction_mode": "EXCLUSIVE"}, False),
    ],
)
def test_sqlite_in_deferred_mode_is_warned_about(options, warned):
    databases = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3", "OPTIONS": options}}
    found = [(m.id, m.msg) for m in sqlite_transaction_warnings(databases, {"default"})]
    if warned:
        assert [i for i, _ in found] == ["django_pgpay.W011"]
        assert "'default'" in found[0][1] and "database is locked" in found[0][1]
    else:
        assert found == []


def test_other_databases_are_not_warned_about():
    databases = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop"}, "logs": {"ENGINE": "django.db.backends.sqlite3"}}
    assert sqlite_transaction_warnings(databases, {"default"}) == []  # "logs" holds no orders


def test_the_test_settings_pass_the_sqlite_check():
    assert check_sqlite_transactions() == []  # tests/settings.py: IMMEDIATE on SQLite, or another database


# --- MySQL / MariaDB character set (W012; run on MariaDB in CI) ----------------------------------

mariadb_only = pytest.mark.skipif(connection.vendor != "mysql", reason="a MySQL/MariaDB check: CI runs it in the MariaDB step")


@mariadb_only
@pytest.mark.django_db
def test_the_test_database_in_utf8mb4_passes_the_charset_check():
    assert check_mysql_charset(databases=["default"]) == []
    assert check_mysql_charset(databases=None) == []  # not a database check run: nothing asked


@mariadb_only
@pytest.mark.django_db(transaction=True)
def test_a_table_in_utf8mb3_is_named_with_the_way_out():
    """Hangul fits utf8mb3, an emoji does not: a cancel reason or a webhook body with one failed to save (error 1366)."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE pgpay_legacy_ledger (reason TEXT) CHARACTER SET utf8mb3")
    try:
        with connection.cursor() as cursor, pytest.raises(DatabaseError, match="1366|Incorrect string value"):
            cursor.execute("INSERT INTO pgpay_legacy_ledger VALUES (%s)", ["환불해 주세요 🙏"])
        found = mysql_charset_warnings(connection, ["pgpay_legacy_ledger", "django_pgpay_webhookevent"])
        assert [m.id for m in found] == ["django_pgpay.W012"]
        assert "tables pgpay_legacy_ledger" in found[0].msg and "emoji" in found[0].msg
        assert "CONVERT TO CHARACTER SET utf8mb4" in found[0].hint
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE pgpay_legacy_ledger")


def test_a_misspelled_key_gets_the_setting_it_meant(settings):
    settings.PGPAY = {"GATEWAYS": {}, "DEFAULT_GATEWAYS": "fake"}
    (message,) = check_settings()
    assert message.id == "django_pgpay.E009" and message.hint == "Did you mean 'DEFAULT_GATEWAY'?"


def test_the_sandbox_serves_without_debug_only_when_told_true(settings):
    from django_pgpay.sandbox import conf as sandbox_conf

    settings.DEBUG = False
    for value, allowed in ((True, True), ("False", False), ("0", False), (1, False), (False, False)):
        settings.PGPAY = {"GATEWAYS": {}, "SANDBOX_ALLOW_WITHOUT_DEBUG": value}
        assert sandbox_conf.allowed() is allowed, value


def test_csv_bom_is_turned_off_only_by_false(settings):
    from django_pgpay import exports

    for value, bom in ((False, False), (True, True), ("False", True), (0, True)):
        settings.PGPAY = {"GATEWAYS": {}, "CSV_BOM": value}
        assert exports.bom_default() is bom, value


def test_an_unknown_task_backend_is_named_and_webhooks_run_inline(settings, client, caplog):
    from django_pgpay import tasks

    settings.PGPAY = {"GATEWAYS": {"fake": {"CLASS": FAKE}}, "TASK_BACKEND": "defualt"}
    (message,) = [m for m in check_settings() if m.id == "django_pgpay.E012"]
    assert message.msg.startswith("PGPAY[\"TASK_BACKEND\"] = 'defualt': ")
    assert tasks.queued(tasks.process_delivery) is False  # not an exception: the webhook view stores and processes inline
    assert "process_delivery runs inline" in caplog.text


def test_use_tz_false_is_an_error(settings):
    settings.USE_TZ = False
    settings.PGPAY = {"GATEWAYS": {}}
    assert [m.id for m in check_settings()] == ["django_pgpay.E013"]


# --- gateway OPTIONS -----------------------------------------------------------------


def gateway_messages(settings, cls, options):
    settings.PGPAY = {"GATEWAYS": {"pg": {"CLASS": cls, "OPTIONS": options}}}
    return [(m.id, m.msg, m.hint) for m in check_settings()]


TOSS = "django_pgpay.gateways.toss.TossGateway"
TOSS_KEYS = {"SECRET_KEY": "test_sk_x", "CLIENT_KEY": "test_ck_x"}


@pytest.mark.parametrize(
    ("cls", "options", "name", "hint"),
    [
        # a typo that turned Bootpay's webhook allowlist off in silence
        (
            "django_pgpay.gateways.bootpay.BootpayGateway",
            {"CLIENT_KEY": "test_c", "SECRET_KEY": "test_s", "WEBHOOK_ALLOWED_IP": True},
            "WEBHOOK_ALLOWED_IP",
            "Did you mean 'WEBHOOK_ALLOWED_IPS'?",
        ),
        (TOSS, {**TOSS_KEYS, "PAY_METHODS": "CARD"}, "PAY_METHODS", "Did you mean 'PAY_METHOD'?"),
        (TOSS, {**TOSS_KEYS, "TEST_CODES": "x"}, "TEST_CODES", "Did you mean 'TEST_CODE'?"),
        (FAKE, {"ZZZ": 1}, "ZZZ", "Its options: PARTIAL_CANCEL, WEBHOOK_ALLOWED_IPS."),
    ],
)
def test_an_option_the_gateway_does_not_read_is_an_error(settings, cls, options, name, hint):
    found = [m for m in gateway_messages(settings, cls, options) if m[0] == "django_pgpay.E303"]
    assert len(found) == 1 and f"[{name!r}] is not an option of the" in found[0][1] and found[0][2] == hint


def test_old_spellings_and_a_shops_own_gateway_are_not_unknown(settings):
    from django_pgpay.gateways.fake import FakeGateway

    class OwnGateway(FakeGateway):
        option_names = None  # a gateway that does not declare its options

    import tests.test_checks as module

    module.OwnGateway = OwnGateway
    ids = [m[0] for m in gateway_messages(settings, TOSS, {**TOSS_KEYS, "METHOD": "CARD"})]
    assert "django_pgpay.W010" in ids and "django_pgpay.E303" not in ids
    assert gateway_messages(settings, "tests.test_checks.OwnGateway", {"ANYTHING": 1}) == []


@pytest.mark.parametrize("timeout", ["30s", 0, -1, float("nan"), (5,), (3, 0), True, [3, "x"]])
def test_a_timeout_that_requests_cannot_use_is_an_error(settings, timeout):
    found = [m for m in gateway_messages(settings, TOSS, {**TOSS_KEYS, "TIMEOUT": timeout}) if m[0] == "django_pgpay.E304"]
    assert len(found) == 1 and found[0][1].startswith("PGPAY[\"GATEWAYS\"]['pg'][\"OPTIONS\"]['TIMEOUT']: ")
    # and at call time a ConfigurationError naming it, not a ValueError from deep in requests
    with pytest.raises(ConfigurationError, match="TIMEOUT"):
        get_gateway("pg").http  # noqa: B018


@pytest.mark.parametrize(("timeout", "used"), [(None, (3.05, 30.0)), (10, 10.0), (2.5, 2.5), ((3, 30), (3.0, 30.0)), ([1, 2], (1.0, 2.0))])
def test_a_good_timeout_is_used(settings, timeout, used):
    options = {**TOSS_KEYS, **({} if timeout is None else {"TIMEOUT": timeout})}
    assert [m for m in gateway_messages(settings, TOSS, options) if m[0] == "django_pgpay.E304"] == []
    assert get_gateway("pg").http.timeout == used


def test_stripe_payment_method_types_must_be_a_list(settings):
    stripe = "django_pgpay.gateways.stripe.StripeGateway"
    options = {"SECRET_KEY": "sk_test_x", "WEBHOOK_SECRETS": ["whsec_x"]}
    found = gateway_messages(settings, stripe, {**options, "PAYMENT_METHOD_TYPES": "card"})
    assert [m[0] for m in found if m[0].startswith("django_pgpay.E")] == ["django_pgpay.E203"]
    assert [
        m for m in gateway_messages(settings, stripe, {**options, "PAYMENT_METHOD_TYPES": ["card"]}) if m[0] == "django_pgpay.E203"
    ] == []


def test_portone_include_sandbox_is_true_only_when_true(settings):
    v1 = "django_pgpay.gateways.portone_v1.PortOneV1Gateway"
    options = {"IMP_KEY": "k", "IMP_SECRET": "s", "MERCHANT_CODE": "imp00000000", "PG": "html5_inicis"}
    found = gateway_messages(settings, v1, {**options, "INCLUDE_SANDBOX": "False"})
    assert "django_pgpay.E112" in [m[0] for m in found]
    assert get_gateway("pg").include_sandbox is False  # test-channel payments do not pay orders
    gateway_messages(settings, v1, {**options, "INCLUDE_SANDBOX": True})
    assert get_gateway("pg").include_sandbox is True


# --- permissions named by the shop -------------------------------------------------


def test_a_refund_permission_no_model_declares_is_named(monkeypatch):
    from tests.testapp.models import Booking

    assert [m.id for m in check_order_models()] == []
    monkeypatch.setattr(Booking, "get_refund_permission", classmethod(lambda cls: "testapp.refund_bookings"))
    (message,) = check_order_models()
    assert message.id == "django_pgpay.W013" and message.obj is Booking
    assert "'testapp.refund_bookings' is a permission no model declares" in message.msg


def test_the_admins_permission_attributes_are_checked():
    from django.contrib import admin

    from django_pgpay.admin import OrderAdmin, WebhookEventAdmin
    from django_pgpay.models import WebhookEvent
    from tests.testapp.models import Booking

    class TypoAdmin(OrderAdmin):
        refund_permission = "testapp.change_bookings"  # one letter too many
        settlement_permission = "testapp.view_booking"  # a default permission: fine

    class ReprocessAdmin(WebhookEventAdmin):
        reprocess_permission = "django_pgpay.reprocess_webhookevent"

    site = admin.AdminSite()
    found = [(m.id, m.msg) for m in TypoAdmin(Booking, site).check()]
    assert found[0] == (
        "django_pgpay.W013",
        "TypoAdmin.refund_permission = 'testapp.change_bookings' is a permission no model declares: no staff user can have it.",
    )
    assert [m[0] for m in found] == ["django_pgpay.W013", "django_pgpay.E014"]  # and not the model's rule (below)
    assert [m.id for m in ReprocessAdmin(WebhookEvent, site).check()] == ["django_pgpay.W013"]
    assert [m.id for m in OrderAdmin(Booking, site).check()] == []


@pytest.mark.django_db
def test_an_admin_refund_permission_other_than_the_models_is_an_error(client, django_user_model, pg):
    """An attack review (7 December 2026): the admin's stricter ``refund_permission`` alone let a clerk it
    refused refund through the shop's cancel view, which reads the model's rule."""
    from django.contrib import admin
    from django.contrib.auth.models import Permission

    from django_pgpay.admin import OrderAdmin
    from tests.testapp.models import Booking, CartOrder

    class StricterAdmin(OrderAdmin):
        refund_permission = "testapp.delete_booking"  # Booking's model rule is its change permission

    (error,) = [m for m in StricterAdmin(Booking, admin.AdminSite()).check() if m.id == "django_pgpay.E014"]
    assert error.level == checks.ERROR
    assert "StricterAdmin.refund_permission = 'testapp.delete_booking', but Booking.get_refund_permission() is " in error.msg
    assert "get_refund_permission()" in error.hint
    # The test shop states the rule on the model (CartOrder.get_refund_permission), its admin agreeing:
    # a clerk with view and change but not the refund permission is refused in the admin and in the view.
    from django.core.management import call_command

    call_command("check")  # no E014 in the test project
    from decimal import Decimal

    from django_pgpay import payments

    order = CartOrder.objects.create(amount=Decimal(8000))
    payments.confirm(order, payment_id=pg.authorize(order.order_number, order.amount), amount=order.amount)
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_cartorder", "change_cartorder"]))
    client.force_login(clerk)
    admin_refund = client.post(f"/admin/testapp/cartorder/{order.pk}/refund/", {"amount": "8000", "reason": "x", "confirm": "yes"})
    assert admin_refund.status_code == 403
    view_refund = client.post(f"/pay/cancel/{order.order_number}/", {"full": "1", "token": "t2", "confirm": "1"})
    assert view_refund.status_code in (403, 404)
    order.refresh_from_db()
    assert order.status == "PAID" and not order.transactions.filter(kind="cancel").exists()


def test_an_in_flight_timeout_not_longer_than_a_pg_call_is_named(settings):
    """Reconciliation fails an operation older than IN_FLIGHT_TIMEOUT that the PG has no record of: a
    value below a call's timeouts failed a cancel still on its way (an attack review, 7 December 2026)."""
    from django_pgpay.checks import check_in_flight_timeout

    assert check_in_flight_timeout() == []  # 120 s against (3.05 + 30) s
    gateways = {
        alias: {**entry, "OPTIONS": {**(entry.get("OPTIONS") or {}), "TIMEOUT": (5, 60)}}
        for alias, entry in settings.PGPAY["GATEWAYS"].items()
    }
    settings.PGPAY = {**settings.PGPAY, "GATEWAYS": gateways, "IN_FLIGHT_TIMEOUT": 60}
    found = check_in_flight_timeout()
    assert found and {m.id for m in found} == {"django_pgpay.W014"} and len(found) == len(gateways)
    assert 'IN_FLIGHT_TIMEOUT"] = 60 s is not longer than a call to' in found[0].msg and "(65 s)" in found[0].msg


# --- MySQL / MariaDB isolation level (E015) ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "refused"),
    [
        ({}, False),  # Django's MySQL default: READ COMMITTED
        ({"isolation_level": "read committed"}, False),
        ({"isolation_level": "READ COMMITTED"}, False),
        ({"isolation_level": "repeatable read"}, True),
        ({"isolation_level": None}, True),  # the server's own default (REPEATABLE READ on MariaDB)
        ({"isolation_level": "serializable"}, True),
        ({"init_command": "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"}, True),  # review: the check missed it
        ({"init_command": "SET tx_isolation='REPEATABLE-READ'"}, True),
        ({"init_command": "SET sql_mode='STRICT_TRANS_TABLES'"}, False),
        ({"isolation_level": "repeatable read", "init_command": "SET transaction_isolation='READ-COMMITTED'"}, False),
    ],
)
def test_a_mysql_database_of_the_orders_must_run_at_read_committed(options, refused):
    """Attack review (MariaDB): at REPEATABLE READ every concurrent checkout of new buyers but one deadlocked (1213)."""
    from django_pgpay.checks import mysql_isolation_errors

    databases = {
        "default": {"ENGINE": "django.db.backends.mysql", "OPTIONS": options},
        "other": {"ENGINE": "django.db.backends.mysql", "OPTIONS": {"isolation_level": "repeatable read"}},
    }
    found = mysql_isolation_errors(databases, {"default"})  # "other" holds no orders: not asked about
    assert [m.id for m in found] == (["django_pgpay.E015"] if refused else [])


def test_the_test_settings_pass_the_isolation_check():
    from django_pgpay.checks import check_mysql_isolation

    assert check_mysql_isolation() == []
