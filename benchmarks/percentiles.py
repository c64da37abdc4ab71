"""The one percentile of the benchmark suite and the chaos suite: linear interpolation.

Every p50, p95 and p99 that ``raymesh bench`` and ``raymesh chaos`` report comes from
`percentile`. Its definition is the one the committed figures (``docs/bench/*.json``)
were computed with: ``statistics.quantiles(values, method="inclusive")``, NumPy's default
(``linear``), Hyndman and Fan's type 7. The sorted values are points at positions
``0 .. n-1``; the percentile at `share` is the point at position ``share * (n - 1)``,
interpolated linearly between its two neighbours. So the 0.5 percentile is the median,
0 the minimum and 1 the maximum, and one value is every percentile of itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["percentile"]


def percentile(values: Iterable[float], share: float) -> float | None:
    """Return the percentile at `share` (0..1) of `values`, linearly interpolated.

    Returns None for no values.

    Raises:
        ValueError: `share` is outside 0..1.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in 0..1, not {share!r}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = share * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
