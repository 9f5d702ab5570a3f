"""docs/reliability.rst shows the fault matrix the tests check: the two must not drift apart."""

import re
from pathlib import Path

from tests.soak.test_fault_matrix import OUTCOMES, PG_OUTCOMES

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.rst"


def test_the_fault_matrix_table_is_the_tested_one():
    rows = re.findall(r"^(pay|refund|partial|webhook)\s{2,}(\S+)\s{2,}(.+?)\s*$", DOC.read_text("utf-8"), re.M)
    documented = {(operation, fault): outcome for operation, fault, outcome in rows}
    assert set(documented) == set(OUTCOMES)
    for (operation, fault), status in OUTCOMES.items():
        differs = {alias: s for (alias, op, f), s in PG_OUTCOMES.items() if (op, f) == (operation, fault)}
        assert documented[(operation, fault)].startswith(str(status)), (operation, fault)
        for outcome in set(differs.values()):
            assert str(outcome) in documented[(operation, fault)], (operation, fault, outcome)
