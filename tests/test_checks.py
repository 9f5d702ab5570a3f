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
        ({"READY_TIMEOUT": "30", "GATEWAYS": {}}, ("django_pgpay.E008", 'PGPAY["READY_TIMEOUT"] must be a number of seconds >= 0.')),
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
