"""``bench/flash_sale.py``'s verdict: ours against the tutorial round by round, not only the median round."""

import argparse

import pytest

from bench import flash_sale


def a_round(app: str, served: float) -> dict:
    """One round's figures as ``run_one`` returns them: nothing oversold, lost or doubled."""
    figures = {key: 0 for key in flash_sale.ROWS_GOOD_AT_ZERO}
    return {
        "app": app,
        "layout": "many",
        **figures,
        "capacity": 20,
        "PAID orders after the sale": 20,
        "final remain": 20,
        "expected remain": 20,
        "buyers served/s": served,
        "requests/s (shop)": served * 1.6,
        "shop p50 ms": 200.0,
        "shop p95 ms": 500.0,
        "_errors": {},
        "_by_label": {},
    }


ARGS = argparse.Namespace(buyers=200, in_flight=50, seats=20, hosts=1, workers=4, threads=4, pg_workers=2, rounds=3, verbose=False)


@pytest.mark.parametrize(
    ("ours", "tutorial", "ok", "line"),
    [
        ((90, 95, 100), (88, 94, 99), True, "x1.02, x1.01, x1.01 (3 of 3 at x1.00 or above)"),
        # The median rounds (95 against 94) say ours is ahead; round 1 (80 against 88) says otherwise.
        ((80, 95, 100), (88, 94, 99), False, "x0.91, x1.01, x1.01 (2 of 3 at x1.00 or above)"),
    ],
)
def test_the_verdict_compares_every_round_with_the_tutorials_round(capsys, ours, tutorial, ok, line):
    rounds = [a_round("ours", x) for x in ours] + [a_round("tutorial", x) for x in tutorial]
    assert flash_sale.report(rounds, ARGS) is ok
    out = capsys.readouterr().out
    assert f"ours / tutorial throughput round by round: {line}" in out
    assert ("throughput below the tutorial's in round 1 of this run" in out) is not ok


def test_a_round_with_something_oversold_fails_whatever_the_throughput(capsys):
    rounds = [a_round("ours", 100), a_round("tutorial", 50)]
    rounds[0]["places oversold"] = 1
    assert flash_sale.report(rounds, ARGS) is False
    assert "NOT OK: places oversold" in capsys.readouterr().out
