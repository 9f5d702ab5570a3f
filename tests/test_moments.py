"""The management commands' time options: one parser, the same meaning in every command."""

import datetime

import pytest
from django.core.management import CommandError
from django.utils import timezone

from django_pgpay.management.moments import parse_moment, parse_range


def test_a_date_is_its_whole_day_in_the_site_time_zone(settings):
    settings.TIME_ZONE = "Asia/Seoul"
    moment = parse_moment("2026-01-31", "--until")
    assert moment.is_date
    assert moment.start == timezone.make_aware(datetime.datetime(2026, 1, 31))
    assert moment.end - moment.start == datetime.timedelta(days=1)
    assert moment.until("paid_at").children == [("paid_at__lt", moment.end)]
    assert moment.since("paid_at").children == [("paid_at__gte", moment.start)]


def test_a_datetime_is_an_instant_and_until_includes_it():
    moment = parse_moment("2026-01-31T09:00:00+09:00", "--until")
    assert not moment.is_date and moment.start == moment.end
    assert moment.start == datetime.datetime(2026, 1, 31, 0, 0, tzinfo=datetime.timezone.utc)
    assert moment.until("created").children == [("created__lte", moment.start)]


def test_durations_only_where_the_command_allows_them():
    ago = timezone.now() - parse_moment("12h", "--deep-since", durations=True).start
    assert abs(ago - datetime.timedelta(hours=12)) < datetime.timedelta(seconds=5)
    with pytest.raises(CommandError, match=r"^--since '12h': use a date"):
        parse_moment("12h", "--since")


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-02-30", ""])
def test_a_bad_value_names_the_option(bad):
    with pytest.raises(CommandError, match="--until"):
        parse_moment(bad, "--until")


@pytest.mark.parametrize("far", ["9999-12-31", "0001-01-01", "0001-01-01T00:00", "9999-12-31T23:59", "99999999999d", "999999d"])
def test_a_moment_at_the_calendars_ends_is_refused_by_name_not_a_traceback(far):
    """The day after 9999-12-31 does not exist, nor 0001-01-01 in UTC from Seoul: an OverflowError before."""
    with pytest.raises(CommandError, match=r"^--deep-since .*between 1900-01-01 and 9998-12-31"):
        parse_moment(far, "--deep-since", durations=True)


def test_the_first_and_last_accepted_days():
    assert parse_moment("1900-01-01", "--since").is_date
    assert parse_moment("9998-12-31", "--until").end.year == 9999


# --- a range of two moments -------------------------------------------------------


def test_a_range_of_nothing_given_is_open_at_both_ends():
    assert parse_range(None, None) == (None, None)
    since, until = parse_range("2026-01-01", None)
    assert since.is_date and until is None


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-01-10", "2026-01-10"),
        ("2026-01-10T23:59", "2026-01-10"),
        ("2026-01-10T09:00", "2026-01-10T09:00"),
        ("2026-01-10", "2026-01-10T00:00"),
    ],
)
def test_a_range_may_be_one_day_or_one_instant(since, until):
    assert all(parse_range(since, until))


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2030-01-01", "2020-01-01"),
        ("2026-01-11", "2026-01-10"),
        ("2026-01-11T00:00", "2026-01-10"),
        ("2026-01-10T09:01", "2026-01-10T09:00"),
    ],
)
def test_a_reversed_range_is_refused_by_name(since, until):
    with pytest.raises(CommandError, match=rf"^--until '{until}' is before --since '{since}': the end of the range is before its start"):
        parse_range(since, until)


def test_a_range_names_the_options_it_was_given():
    with pytest.raises(CommandError, match="^--to '2020-01-01' is before --from '2030-01-01'"):
        parse_range("2030-01-01", "2020-01-01", since_option="--from", until_option="--to")
    with pytest.raises(CommandError, match="^--from '': use a date"):
        parse_range("", None, since_option="--from", until_option="--to")


def test_a_moment_after_now_is_refused_where_the_option_looks_back():
    future = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    assert parse_moment(future, "--since").is_date  # allowed unless refused
    with pytest.raises(CommandError, match=rf"^--deep-since '{future}': is after now"):
        parse_moment(future, "--deep-since", durations=True, past_only=True)
    assert parse_moment(timezone.localdate().isoformat(), "--deep-since", past_only=True).start <= timezone.now()
