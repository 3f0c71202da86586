"""bench.memory's fitted growth: a line through every sample, not the last one alone."""

from __future__ import annotations

from bench.memory import slope


def test_the_fitted_growth_is_the_line_s_slope_and_a_sawtooth_without_trend_has_none() -> None:
    line = [(x, 300.0 + 40e-6 * x) for x in range(500_000, 1_000_001, 50_000)]
    assert abs(slope(line) * 1e6 - 40.0) < 1e-9
    # Memtables filling and flushing: swings of 50 MB, level on the whole.
    saw = [(x, 500.0 + (50.0 if (x // 50_000) % 2 else 0.0)) for x in range(0, 1_000_001, 50_000)]
    assert abs(slope(saw) * 1e6) < 1e-9
