"""Plots of the topology suite: throughput vs N (mesh, hub, raw Ray, autogen) and ask latency.

matplotlib is optional (the ``bench`` extra); `require` is called before measuring so a
missing package fails in a second, not after minutes of measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.topology import BASE_PAYLOAD, Row

__all__ = ["draw", "require"]

_STYLE = {"mesh": "C0-o", "hub": "C1-s", "raw-mesh": "C0--o", "raw-hub": "C1--s",
          "autogen": "C2:^"}  # fmt: skip


def require() -> None:
    """Raise SystemExit with the fix if matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit(
            "--plot needs matplotlib: pip install matplotlib (or the bench extra)"
        ) from None


def draw(rows: Sequence[Row], path: str) -> None:
    """Write a PNG: msgs/s vs N for tell and ask, and ask p50/p95/p99 vs N, at 1 KiB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = [r for r in rows if r.payload_bytes == BASE_PAYLOAD and r.scenario == "local"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, mode in zip(axes[:2], ("tell", "ask"), strict=True):
        for topology, style in _STYLE.items():
            points = sorted((r.agents, r.msgs_per_s) for r in base
                            if r.mode == mode and r.topology == topology)  # fmt: skip
            if points:
                ax.plot(*zip(*points, strict=True), style, label=topology)
        _frame(ax, f"{mode}: throughput, {BASE_PAYLOAD} B payload", "messages / s")
    ax = axes[2]
    for topology, style in _STYLE.items():
        asks = sorted((r.agents, r) for r in base if r.mode == "ask" and r.topology == topology)
        if not asks:
            continue
        color = style[:2]
        ns = [n for n, _ in asks]
        ax.plot(ns, [r.p50_ms for _, r in asks], style, label=f"{topology} p50")
        ax.fill_between(ns, [_num(r.p50_ms) for _, r in asks], [_num(r.p99_ms) for _, r in asks],
                        color=color, alpha=0.12)  # fmt: skip
        ax.plot(ns, [r.p95_ms for _, r in asks], f"{color}:", linewidth=0.8)
        ax.plot(ns, [r.p99_ms for _, r in asks], f"{color}-.", linewidth=0.8)
    _frame(ax, "ask latency: p50 (line), p95 (dotted), p99 (dash-dot)", "ms", log=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _num(value: float | None) -> float:
    return float("nan") if value is None else value


def _frame(ax: Any, title: str, ylabel: str, *, log: bool = True) -> None:
    from matplotlib import ticker

    ax.set_title(title, fontsize=10)
    ax.set_xlabel("agents (N)")
    ax.set_ylabel(ylabel)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    if log:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
