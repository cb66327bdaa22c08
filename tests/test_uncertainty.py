"""Block bootstrap, expanded intervals, Diebold–Mariano test and predictability horizon."""

from __future__ import annotations

import numpy as np
import pytest

from ames.config import BootstrapConfig
from ames.evaluation.uncertainty import (
    Interval,
    block_indices,
    dm_test,
    expanded_tail,
    interval,
    n_blocks,
    origin_counts,
    predictability_horizon,
)

N_ORIGINS, HORIZON, BLOCK = 99, 12, 12


def _ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + np.sqrt(1 - rho**2) * rng.standard_normal()
    return x


def overlapping_pair(
    rng: np.random.Generator, rho: float = 0.45, b: tuple[float, float] = (0.9, 0.45)
) -> list[np.ndarray]:
    """Per-origin SSE of climatology, A and B for 99 origins × 12 overlapping leads.

    Target-month errors are a persistent AR(1) shared by all three forecasts (the same
    observation busts them all), so origin t and t+1 share 11 of 12 targets, as in the test
    split. Population MSE: climatology 1, A 0.8² + 0.4² = 0.80, B b[0]² + b[1]² (1.0125).
    """
    common = _ar1(rng, N_ORIGINS + HORIZON + 1, rho)
    target = np.arange(N_ORIGINS)[:, None] + np.arange(1, HORIZON + 1)[None]
    shape = (N_ORIGINS, HORIZON)
    err_a = 0.8 * common[target] + 0.4 * rng.standard_normal(shape)
    err_b = b[0] * common[target] + b[1] * rng.standard_normal(shape)
    return [(e**2).sum(axis=1) for e in (common[target], err_a, err_b)]


def delta_msess_interval(sse_clim, sse_a, sse_b, seed: int, n_boot: int = 1000) -> Interval:
    """ΔMSESS (A − B) = (SSE_B − SSE_A)/SSE_clim with its 90 % paired-bootstrap interval."""
    indices = block_indices(N_ORIGINS, BLOCK, n_boot, seed)
    counts = origin_counts(indices, N_ORIGINS)
    samples = (counts @ sse_b - counts @ sse_a) / (counts @ sse_clim)
    estimate = (sse_b.sum() - sse_a.sum()) / sse_clim.sum()
    return interval(estimate, samples, 0.9, n_blocks(N_ORIGINS, BLOCK))


def test_bootstrap_covers_a_known_difference_at_the_nominal_rate():
    true_delta = (0.9**2 + 0.45**2) - (0.8**2 + 0.4**2)  # population MSE_clim = 1
    hits = 0
    for rep in range(100):
        rng = np.random.default_rng(1000 + rep)
        found = delta_msess_interval(*overlapping_pair(rng), seed=rep)
        hits += found.lo <= true_delta <= found.hi
    assert hits >= 85, f"the 90 % interval covered the true difference in {hits}/100 replications"


def test_identical_forecasts_give_an_interval_at_zero_and_no_significance():
    sse_clim, sse_a, _ = overlapping_pair(np.random.default_rng(3))
    found = delta_msess_interval(sse_clim, sse_a, sse_a.copy(), seed=0)
    assert found.lo <= 0.0 <= found.hi
    assert not found.excludes_zero
    dm = dm_test(sse_a, sse_a.copy(), max_lag=BLOCK, df=7)
    assert dm.p_value == 1.0 and dm.statistic == 0.0


def test_a_large_difference_is_significant_for_both_opinions():
    sse_clim, sse_a, sse_b = overlapping_pair(np.random.default_rng(4), b=(1.2, 0.4))
    found = delta_msess_interval(sse_clim, sse_a, sse_b, seed=0)
    assert found.excludes_zero and found.lo > 0
    dm = dm_test(sse_a, sse_b, max_lag=BLOCK, df=7)
    assert dm.statistic < 0 and dm.p_value < 0.01
    # the difference sits in the shared, overlapping target errors: few independent origins
    assert 1 <= dm.n_eff < N_ORIGINS / 2


def test_blocks_are_whole_runs_of_consecutive_origins():
    for n_origins, block in ((99, 12), (50, 13), (24, 12)):
        indices = block_indices(n_origins, block, n_boot=500, seed=1)
        assert indices.shape == (500, n_origins // block, block)
        assert (np.diff(indices, axis=-1) == 1).all()  # never split inside a block
        assert indices.min() >= 0 and indices.max() < n_origins  # never wrapped or cut
        counts = origin_counts(indices, n_origins)
        assert (counts.sum(axis=1) == (n_origins // block) * block).all()
        assert counts[7, indices[7, 0, 0]] >= 1
        # every start is reachable, including the last full block
        assert set(np.unique(indices[..., 0])) == set(range(n_origins - block + 1))


def test_fixed_seed_gives_the_same_resamples():
    assert np.array_equal(block_indices(99, 12, 50, 7), block_indices(99, 12, 50, 7))
    assert not np.array_equal(block_indices(99, 12, 50, 7), block_indices(99, 12, 50, 8))


def test_fewer_than_two_blocks_is_an_error():
    with pytest.raises(ValueError, match="fewer than two blocks"):
        block_indices(19, 12, 10, 0)


def test_expanded_tail_widens_for_few_blocks_and_tends_to_the_percentile():
    assert expanded_tail(0.9, 8) < 0.03
    assert expanded_tail(0.9, 2000) == pytest.approx(0.05, abs=1e-3)


def test_config_rejects_blocks_shorter_than_a_year():
    section = {"block_months": 6, "n_boot": 1000, "level": 0.9, "bootstrap_seed": 1}
    with pytest.raises(ValueError, match="block_months"):
        BootstrapConfig.from_params(section)
    assert BootstrapConfig.from_params({**section, "block_months": 12}).block_months == 12


def test_dm_test_holds_its_size_under_the_null():
    rejections = 0
    for rep in range(200):
        rng = np.random.default_rng(5000 + rep)
        _, sse_a, sse_b = overlapping_pair(rng, b=(0.8, 0.4))  # B distributed as A
        rejections += dm_test(sse_a, sse_b, max_lag=BLOCK, df=7).p_value < 0.10
    # measured 10-12 % (t with n_origins - 1 df: 15-17 %); 200 draws leave room for chance
    assert rejections <= 30, f"{rejections}/200 rejections at the 10 % level"


def test_predictability_horizon_is_the_unbroken_run_from_lead_one():
    assert predictability_horizon([True, True, False, True]) == 2
    assert predictability_horizon([False, True, True]) == 0
    assert predictability_horizon([True] * 12) == 12
