"""The documentation generators cover what they document, and the README stays a front page.

The site itself is built by CI (`mkdocs build --strict`); these tests only import the
generators in `docs/_gen`, with no Ray started and no mkdocs run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs"))

from _gen import bench, cli, errors, settings  # noqa: E402 (docs/ is not a package)

TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/pytest"
RUN_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/raymesh run "
    'examples/review_team.yaml --task "raymesh"'
)


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in type.__subclasses__(cls):
        found |= {sub} | _all_subclasses(sub)
    return found


def test_the_error_tree_has_every_mesh_error() -> None:
    tree = errors.render_error_tree()
    from protocols import MeshError

    ours = {c for c in _all_subclasses(MeshError) if errors._ours(c)} | {MeshError}
    assert ours, "no error classes found"
    missing = [c.__name__ for c in ours if f"`{c.__name__}`" not in tree]
    assert missing == []
    assert set(errors.error_classes()) == ours


def test_the_error_tree_shows_extra_bases() -> None:
    tree = errors.render_error_tree()
    assert "`DeadlineExceededError` (also `TimeoutError`)" in tree
    assert "`DecodeError` (also `ValueError`)" in tree


def test_the_deadline_error_is_listed_once_under_delivery_error_homed_in_protocols() -> None:
    # One deadline error in memory and on Ray: it lives below the runtime.
    lines = errors.render_error_tree().splitlines()
    [line] = [line for line in lines if line.lstrip().startswith("- `DeadlineExceededError`")]
    [parent] = [p for p in lines if p.lstrip().startswith("- `DeliveryError`")]
    assert "· `protocols`" in line
    assert len(line) - len(line.lstrip()) == len(parent) - len(parent.lstrip()) + 4
    assert "AskTimeoutError" not in "\n".join(lines)


#: A line of a tree drawn by hand: a box-drawing branch, then a class name ending in Error.
_DRAWN = re.compile(r"^(?P<indent>[\s│]*)[├└]── (?P<name>\w+Error)\b", re.M)


def _drawn_trees() -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for package in ("protocols", "mesh", "actors", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            drawn = [(len(m["indent"]), m["name"]) for m in _DRAWN.finditer(text)]
            if drawn:
                found[str(path.relative_to(ROOT))] = drawn
    return found


def test_the_error_tree_is_drawn_only_by_the_docs_generator() -> None:
    assert _drawn_trees() == {}, "point to the generated page (reference/errors.md) instead"


def test_the_settings_table_has_a_row_per_field() -> None:
    from mesh import MeshConfig

    table = settings.render_settings_table()
    for name in MeshConfig.model_fields:
        assert f"| `{name}` | `RAYMESH_{name.upper()}` |" in table


def test_the_cli_reference_lists_every_command() -> None:
    import typer

    from mesh.cli import app

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="raymesh")
    names = group.list_commands(ctx)  # type: ignore[attr-defined]
    assert len(names) > 5
    reference = cli.render_cli_reference()
    paths = cli.command_paths()
    for name in names:
        assert f"raymesh {name}" in paths
        assert f"## `raymesh {name}`" in reference


def test_the_guides_profile_table_is_the_one_the_committed_profiles_render() -> None:
    guide = (ROOT / bench.GUIDE).read_text(encoding="utf-8")
    section = bench.profile_section(ROOT)
    assert section in guide, "run `python docs/_gen/bench.py` after committing a profile"
    for stage in ("encode", "sign", "send", "Ray call", "receive", "verify", "decode",
                  "validate", "dispatch", "span", "reply"):  # fmt: skip
        assert f"| {stage} |" in section


def test_the_bench_tables_render_every_committed_file() -> None:
    rendered, chaos = bench.render_results(ROOT)
    files = bench.result_files(ROOT)
    assert files, "no committed results in docs/bench"
    for path in files:
        assert f"`{path.name}`" in rendered + chaos


@pytest.mark.parametrize("line", [RUN_COMMAND, TEST_COMMAND], ids=["run", "test"])
def test_the_readme_is_a_front_page_with_the_quick_start(line: str) -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300
    assert line in lines  # verbatim and alone on its line: CI greps it
