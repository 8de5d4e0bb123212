"""The statistics of the drift checks, on binned counts (the reference's cells and the window's), numpy only.

Tests are two-sample (reference rows against window rows), so the reference's own sampling noise is accounted for
and a window of a million rows is not "significant" on differences a 1,400-row reference cannot resolve. p-values:
Kolmogorov–Smirnov (asymptotic, Stephens' correction; conservative on discrete data), chi-square of homogeneity
(regularised incomplete gamma), a one-sided two-proportion z-test; Benjamini–Hochberg across a family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

EPS = 1e-4  # share floor of PSI and of empty bins (the usual convention)


# --- p-values ----------------------------------------------------------------------------------------------------


def ks_pvalue(d: float, n1: float, n2: float) -> float:
    if n1 <= 0 or n2 <= 0 or d <= 0:
        return 1.0
    en = math.sqrt(n1 * n2 / (n1 + n2))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for j in range(1, 101):
        term = sign * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


def _gammaincc(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x) (series below a+1, continued fraction above)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1.0:
        ap, total = a, 1.0 / a
        delta = total
        for _ in range(1000):
            ap += 1.0
            delta *= x / ap
            total += delta
            if abs(delta) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, max(0.0, math.exp(-x + a * math.log(x) - gln) * h))


def chi2_sf(stat: float, df: int) -> float:
    if df <= 0:
        return 1.0
    return _gammaincc(df / 2.0, stat / 2.0)


def chi2_homogeneity(ref: Sequence[float] | NDArray[Any], cur: Sequence[float] | NDArray[Any]) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample chi-square test on counts per bin; bins empty in both are dropped."""
    import numpy as np

    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(cur, dtype=np.float64)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    nr, nc = float(r.sum()), float(c.sum())
    if r.size < 2 or nr <= 0 or nc <= 0:
        return 0.0, 1.0
    total = nr + nc
    col = r + c
    er, ec = col * nr / total, col * nc / total
    stat = float((((r - er) ** 2) / er).sum() + (((c - ec) ** 2) / ec).sum())
    return stat, chi2_sf(stat, int(r.size) - 1)


def increase_pvalue(k1: float, n1: float, k2: float, n2: float) -> float:
    """One-sided p-value that the share k2/n2 exceeds k1/n1 (pooled two-proportion z-test)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se <= 0:
        return 1.0
    z = (k2 / n2 - k1 / n1) / se
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values), in the input order: reject those at or below the rate."""
    m = len(pvalues)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


# --- effect sizes ------------------------------------------------------------------------------------------------


def shares(counts: Sequence[float] | NDArray[Any]) -> NDArray[np.float64]:
    import numpy as np

    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else np.zeros_like(c)


def psi(ref: Sequence[float] | NDArray[Any], cur: Sequence[float] | NDArray[Any]) -> float:
    import numpy as np

    r = np.maximum(shares(ref), EPS)
    c = np.maximum(shares(cur), EPS)
    return float(((c - r) * np.log(c / r)).sum())


def jensen_shannon(ref: Sequence[float] | NDArray[Any], cur: Sequence[float] | NDArray[Any]) -> float:
    """The Jensen–Shannon distance (square root of the divergence, base 2): 0 the same, 1 disjoint."""
    import numpy as np

    p, q = shares(ref), shares(cur)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    m = (p + q) / 2

    def kl(a: NDArray[np.float64]) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def edge_cdf(below: float, counts: NDArray[Any], n: float) -> NDArray[np.float64]:
    """The CDF at every cell edge of a grid (cells + 1 values), from the rows below it and per cell."""
    import numpy as np

    cum = np.concatenate(([0.0], np.cumsum(np.asarray(counts, dtype=np.float64))))
    return (below + cum) / n if n > 0 else cum * 0.0


def wasserstein_grid(ref_cdf: NDArray[Any], cur_cdf: NDArray[Any], width: float,
                     tails: tuple[float, float, float, float]) -> float:
    """W1 between two distributions given by their CDFs at the edges of one uniform grid (trapezoid per cell:
    exact for integer data with a cell per value), plus the tails beyond the grid: TAILS is (reference mean
    distance below lo, window's, reference mean distance above hi, window's)."""
    import numpy as np

    diff = np.abs(np.asarray(ref_cdf) - np.asarray(cur_cdf))
    inner = float(((diff[:-1] + diff[1:]) * 0.5).sum() * width)
    rb, cb, ra, ca = tails
    return inner + abs(rb - cb) + abs(ra - ca)
