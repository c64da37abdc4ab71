"""The test suite's own layout: its directories are not packages, so pytest imports each
module by its bare name (and tests import helpers such as `conftest` and `_agents` by it):
two files with one name would shadow each other."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_python_file_under_tests_has_a_name_of_its_own() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)
    assert [name for name, count in names.items() if count > 1] == []


def test_the_one_conftest_is_at_the_root_of_tests() -> None:
    assert [p.relative_to(TESTS) for p in TESTS.rglob("conftest.py")] == [Path("conftest.py")]
