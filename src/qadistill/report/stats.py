"""The report's statistics: mean ± std over seeds, the propagated error of a retention ratio, and paired t
intervals of one method minus another over the seeds both were trained with.

Retention error is first-order (delta-method) propagation of the student's and the teacher's seed stds, taken as
independent: sigma_R = R * sqrt((s_student / m_student)^2 + (s_teacher / m_teacher)^2). With one teacher seed
(older runs) the teacher contributes 0. The t quantile is computed exactly from the closed-form Student t CDF for
an integer number of degrees of freedom (Abramowitz & Stegun 26.7.3-4), so no scipy is needed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); the std of a single seed is 0."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def retention(mean: float, teacher: tuple[float, float] | None) -> float | None:
    """100 * student mean / teacher mean; None without a teacher or when its mean is 0."""
    if teacher is None or teacher[0] == 0:
        return None
    return 100.0 * mean / teacher[0]


def retention_error(mean: float, std: float, teacher: tuple[float, float] | None) -> float | None:
    """Seed std of a retention ratio (percentage points) by first-order propagation of both seed stds."""
    ratio = retention(mean, teacher)
    if ratio is None or teacher is None:
        return None
    if mean == 0:
        return 100.0 * std / teacher[0]
    return abs(ratio) * math.sqrt((std / mean) ** 2 + (teacher[1] / teacher[0]) ** 2)


def t_within(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with `df` (a positive integer) degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    total, term = 1.0, 1.0
    if df % 2 == 0:
        for k in range(1, (df - 2) // 2 + 1):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2.0 * theta / math.pi
    for k in range(1, (df - 3) // 2 + 1):
        term *= (2 * k) / (2 * k + 1) * c2
        total += term
    return 2.0 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


def t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided critical value t with P(|T| <= t) = `confidence` (12.706 for df 1, 2.776 for df 4 at 95%)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = 0.0, 1.0
    while t_within(high, df) < confidence:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_within(middle, df) < confidence:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences a - b and its t interval; `low`/`high` are None with fewer than 2 pairs."""

    mean: float
    n: int
    low: float | None = None
    high: float | None = None

    @property
    def excludes_zero(self) -> bool | None:
        if self.low is None or self.high is None:
            return None
        return self.low > 0.0 or self.high < 0.0


def paired_difference(
    a: dict[int, float], b: dict[int, float], confidence: float = CONFIDENCE
) -> PairedDifference | None:
    """a - b over the seeds both have (values keyed by seed): mean ± t(n-1) * sd / sqrt(n); None without a
    common seed. Pairing by seed removes what both share (the same demonstration draws and data order)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedDifference(mean, len(diffs))
    half = t_critical(len(diffs) - 1, confidence) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDifference(mean, len(diffs), mean - half, mean + half)
