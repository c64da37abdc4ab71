"""The mkdocs-gen-files script: writes the generated pages into the site at build time.

Nothing here is committed as output: each page is rendered from the code (the CLI, the
settings, the errors, the public API) or from ``docs/bench/*.json`` on every build.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import mkdocs_gen_files

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
if str(DOCS) not in sys.path:
    sys.path.insert(0, str(DOCS))

from _gen import bench, cli, errors, settings, teams  # noqa: E402 (after the path is set)

#: The public packages whose ``__all__`` the API reference documents.
API = ("protocols", "protocols.patterns", "mesh", "actors")
#: Docstrings whose layout griffe's Google parser warns about (and so `--strict` would
#: fail on), parsed without warnings until they are reworded in the code.
LENIENT = {
    "mesh.DeadLetter": "its Attributes section names nine header fields in one entry",
    "actors.PatternAgent": "its Args section has one entry for `args, kwargs`",
}
GENERATED = "<!-- Generated at build time by docs/_gen/pages.py: edit the code, not this page. -->"


def write(path: str, text: str) -> None:
    """Write one generated page into the site's files (never into the work tree)."""
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(f"{GENERATED}\n\n{text}")


def api_page(package: str) -> str:
    """A page with one mkdocstrings block per name in the package's ``__all__``."""
    module = importlib.import_module(package)
    names = sorted(module.__all__, key=str.lower)
    summary = (module.__doc__ or "").strip().splitlines()[0]
    parts = [f"# `{package}`\n", f"{summary}\n",
             f"Everything below is in `{package}.__all__`: import it as "
             f"`from {package} import NAME`.\n"]  # fmt: skip
    for name in names:
        path = f"{package}.{name}"
        lenient = "    options:\n      docstring_options: {warnings: false}\n"
        parts.append(f"::: {path}\n" + (lenient if path in LENIENT else ""))
    return "\n".join(parts)


write("reference/cli.md", cli.render_cli_reference())
write(
    "reference/settings.md",
    "# Settings\n\n"
    "`MeshConfig` (pydantic-settings) reads `RAYMESH_*` environment variables, or takes "
    "values in code: `Mesh.local(config=MeshConfig(ask_timeout_s=5))`. The same frozen "
    "config is shipped to every agent of a mesh. This table is generated from the model's "
    "fields at build time.\n\n" + settings.render_settings_table(),
)
write(
    "reference/errors.md",
    "# Errors\n\n"
    "One root, `MeshError`; every error names the agent, the trace and what to do. This "
    "tree is generated at build time from the error classes of `protocols`, `mesh` and "
    "`actors`: each entry shows the class, its other bases (so `except TimeoutError` "
    "catches `DeadlineExceededError`), where to import it from, and its docstring's "
    "summary.\n\n" + errors.render_error_tree(),
)
bench_md, chaos_md = bench.render_results(ROOT)
write(
    "reference/bench-results.md",
    "# Benchmark results\n\n"
    "Rendered at build time from the committed `docs/bench/*.json` (written by `raymesh "
    "bench --json`). Each is one run on a shared 2-core machine: compare ratios within a "
    "run, not absolute rates across runs. See [the benchmarks guide](../guides/benchmarks.md) "
    "for what is measured and the targets.\n\n" + bench_md,
)
write(
    "reference/chaos-results.md",
    "# Chaos results\n\n"
    "Rendered at build time from committed `raymesh chaos --json` files in `docs/bench/` "
    "(a file with `figures` and `scenarios`). See [the reliability guide]"
    "(../guides/reliability.md#the-chaos-suite) for the scenarios and their targets.\n\n"
    + (
        chaos_md
        or '!!! note "No chaos run is committed yet"\n'
        "    No `raymesh chaos --json` output is in `docs/bench/`, so this page has no "
        "figures. Commit one (`raymesh chaos --json docs/bench/chaos.json`, about 30 "
        "minutes on 2 cores; `--quick` for the CI form) and it appears here.\n"
    ),
)
for package in API:
    write(f"reference/api/{package}.md", api_page(package))
for path, page in teams.render_all(ROOT).items():
    write(path, page)
