"""Predictive distribution, its scores and its PIT and reliability (ames.evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from ames.evaluation.predictive import (
    Predictive,
    climatological_ensemble,
    dressed_members,
    ensemble_cdf,
    ensemble_quantiles,
    observed_category,
    ratio_ensemble,
    shrink_probabilities,
    tercile_edges,
    tercile_probabilities,
)
from ames.evaluation.probabilistic import (
    cross_validated_climatology_weights,
    crps,
    distribution_sums,
    fit_spread_scales,
    fit_tercile_weight,
    mean_crps,
    mean_reference_crps,
    probabilistic_scores,
    rps,
    shrink_to_climatology,
    spread_floors,
)
from ames.evaluation.reliability import pit_histogram, reliability_table
from ames.workflows.probabilistic import lead_tercile_probabilities


def test_crps_matches_the_hand_computed_value_of_a_tiny_ensemble():
    members = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    # CRPS = E|X - y| - E|X - X'| / 2 with E|X - X'| = 12 / 9 over ordered pairs
    expected = [4 / 3 - 2 / 3, 7 / 3 - 2 / 3]
    np.testing.assert_allclose(crps(np.array([3.0, 0.0]), members), expected, rtol=1e-12)


def test_rps_of_terciles_by_hand():
    probs = np.array([[0.2, 0.3, 0.5]])
    # observed "above": cumulative forecast (0.2, 0.5, 1) vs (0, 0, 1)
    np.testing.assert_allclose(rps(np.array([3]), probs), [0.2**2 + 0.5**2])


def _monthly(n_years: int, shape=(3, 4), seed=0):
    rng = np.random.default_rng(seed)
    precip = rng.gamma(2.0, 50.0, size=(12 * n_years, *shape))
    months = np.arange(12 * n_years) % 12
    return precip, months


def test_tercile_edges_and_climatological_ensemble_use_training_months_only():
    precip, months = _monthly(10)
    train = np.arange(len(months)) < 12 * 7
    edges = tercile_edges(precip, months, train)
    ensemble = climatological_ensemble(precip, months, train)
    changed = precip.copy()
    changed[~train] *= 10.0
    np.testing.assert_array_equal(tercile_edges(changed, months, train), edges)
    np.testing.assert_array_equal(climatological_ensemble(changed, months, train), ensemble)
    changed[0] *= 10.0  # a training month
    assert not np.array_equal(tercile_edges(changed, months, train), edges)
    assert ensemble.shape == (12, 7, 3, 4)
    np.testing.assert_allclose(edges[0, 0], np.quantile(precip[train & (months == 0)], 1 / 3, 0))


def test_dressed_members_are_non_negative_sorted_and_centred_on_the_forecast():
    rng = np.random.default_rng(1)
    ratios = np.sort(rng.gamma(1.5, 1 / 1.5, size=(5, 6, 40)), axis=-1)
    ratios /= ratios.mean(axis=-1, keepdims=True)
    point = rng.uniform(0, 300, size=(5, 6))
    for scale in (0.5, 1.0, 2.0):
        members = dressed_members(point, ratios, scale)
        assert (members >= 0).all()
        assert (np.diff(members, axis=-1) >= 0).all()
        q = ensemble_quantiles(members, (0.1, 0.5, 0.9))
        assert (np.diff(q, axis=-1) >= 0).all()
    np.testing.assert_allclose(dressed_members(point, ratios, 0.8).mean(-1), point, rtol=1e-9)


def test_tercile_probabilities_sum_to_one_and_categories_follow_edges():
    rng = np.random.default_rng(2)
    members = np.sort(rng.gamma(2.0, 1.0, size=(50, 30)), axis=-1)
    lower, upper = np.full(50, 1.0), np.full(50, 2.5)
    probs = tercile_probabilities(members, lower, upper)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(
        observed_category(np.array([0.5, 1.0, 2.5, 3.0]), np.full(4, 1.0), np.full(4, 2.5)),
        [1, 2, 2, 3],
    )


def _calibrated_case(n_origins=60, shape=(20, 20), k=39, spread=1.0, seed=3):
    """Members and observations drawn from one gamma law per cell (truth = members' law
    with its spread about the mean multiplied by ``spread``)."""
    rng = np.random.default_rng(seed)
    ratios = np.sort(rng.gamma(3.0, 1 / 3.0, size=(12, k, *shape)), axis=1)
    clim_mean = np.ones((12, *shape))
    draws = rng.gamma(3.0, 1 / 3.0, size=(n_origins, 12, *shape))
    obs = np.maximum(1.0 + spread * (draws - 1.0), 0.0)
    target_month = (np.arange(n_origins)[:, None] + np.arange(1, 13)[None]) % 12
    edges = np.quantile(ratios, [1 / 3, 2 / 3], axis=1).transpose(1, 0, 2, 3)
    predictive = Predictive(ratios, edges, np.ones(12), clim_mean)
    point = np.ones((n_origins, 12, *shape))
    valid = np.ones(shape, dtype=bool)
    return predictive, point, obs, target_month, valid


def test_a_calibrated_forecast_has_a_flat_pit_histogram_and_nominal_coverage():
    predictive, point, obs, month, valid = _calibrated_case()

    def members_at(h, rows):
        return predictive.lead_members(point[rows, h], month[rows, h], h, valid)

    sums = distribution_sums(members_at, obs, month, predictive, valid, (0.1, 0.5, 0.9))
    hist = pit_histogram(sums.pit_counts)
    np.testing.assert_allclose(hist, 0.1, atol=0.01)
    reference = distribution_sums(
        lambda h, rows: predictive.reference_members(month[rows, h], valid),
        obs,
        month,
        predictive,
        valid,
        (0.1, 0.5, 0.9),
    )
    scores = probabilistic_scores(sums, reference, {"all": valid}, valid)
    assert scores["overall"]["coverage"] == pytest.approx(0.8, abs=0.03)
    assert scores["overall"]["crpss"] == pytest.approx(0.0, abs=1e-12)  # it is the reference
    rows = reliability_table(sums.reliability)
    used = [r for r in rows if r["n"] > 1000]
    for row in used:
        assert row["observed_frequency"] == pytest.approx(row["forecast_probability"], abs=0.05)


def test_distribution_sums_do_not_depend_on_how_many_origins_are_scored_at_once(monkeypatch):
    import ames.evaluation.probabilistic as probabilistic

    predictive, point, obs, month, valid = _calibrated_case(n_origins=7, shape=(5, 6))
    predictive = Predictive(
        predictive.ratios, predictive.edges, np.full(12, 0.8), predictive.clim_mean,
        np.full(12, 0.6),
    )  # fmt: skip
    point = point * np.random.default_rng(2).uniform(0.5, 1.5, size=point.shape)

    def scored(chunk):
        monkeypatch.setattr(probabilistic, "ORIGINS_PER_CHUNK", chunk)
        products = {}
        sums = distribution_sums(
            lambda h, rows: predictive.lead_members(point[rows, h], month[rows, h], h, valid),
            obs, month, predictive, valid, (0.1, 0.5, 0.9), seed=3, products=products,
            calibrated=True,
        )  # fmt: skip
        return sums, products

    (one, one_products), (all_, all_products) = scored(1), scored(100)
    for field in ("covered", "pit_counts", "reliability"):  # counts: exactly equal
        np.testing.assert_array_equal(getattr(one, field), getattr(all_, field))
    for field in ("crps", "rps", "crps_by_origin", "rps_by_origin"):  # summation order only
        np.testing.assert_allclose(getattr(one, field), getattr(all_, field), rtol=1e-12)
    for key in ("quantile", "tercile_probability"):
        np.testing.assert_array_equal(one_products[key], all_products[key])


def test_an_overdispersed_ensemble_is_shrunk_by_the_fitted_spread_scale():
    predictive, point, obs, month, valid = _calibrated_case(spread=0.5, n_origins=30)
    scales, report = fit_spread_scales(
        point, obs, month, predictive.ratios, valid, bounds=(0.1, 2.0)
    )
    np.testing.assert_allclose(scales, 0.5, atol=0.08)
    assert all(row["crps"] < row["crps_scale_1"] for row in report)


def test_ratio_ensemble_averages_to_one_and_is_one_where_it_never_rains():
    ensemble = np.zeros((12, 3, 1, 2))
    ensemble[..., 1] = np.array([1.0, 2.0, 6.0])[None, :, None]
    ratios, mean = ratio_ensemble(ensemble)
    np.testing.assert_array_equal(ratios[..., 0], 1.0)
    np.testing.assert_allclose(ratios[..., 1].mean(axis=1), 1.0)
    np.testing.assert_allclose(mean[..., 1], 3.0)
    np.testing.assert_allclose(ratios * mean[:, None], ensemble)


def test_skill_intervals_bracket_the_estimate_and_pair_the_difference():
    from ames.evaluation.probabilistic import skill_intervals
    from ames.evaluation.uncertainty import block_indices, origin_counts

    predictive, point, obs, month, valid = _calibrated_case(n_origins=48, shape=(6, 6))
    sharper = Predictive(
        predictive.ratios, predictive.edges, np.full(12, 0.7), predictive.clim_mean
    )

    def sums_of(p):
        return distribution_sums(
            lambda h, rows: p.lead_members(point[rows, h], month[rows, h], h, valid),
            obs,
            month,
            p,
            valid,
            (0.1, 0.9),
        )

    ref, sharp = sums_of(predictive), sums_of(sharper)
    counts = origin_counts(block_indices(48, 12, 300, 1), 48)
    out = skill_intervals(sharp, ref, counts, 0.9, 4, other=ref)
    assert out["crpss_lo"] <= out["crpss"] <= out["crpss_hi"]
    assert out["delta_crpss"] == pytest.approx(out["crpss"])  # other = the reference itself
    np.testing.assert_allclose(sharp.crps_by_origin.sum(), sharp.crps.sum())


def test_tercile_probabilities_stay_in_the_unit_interval_when_near_normal_is_empty():
    members = np.array([[0.0, 0.0, 5.0, 5.0, 5.0, 5.0]])  # two dry members, four wet ones
    probs = tercile_probabilities(members, np.array([0.0]), np.array([0.0]))
    assert (probs >= 0).all() and (probs <= 1).all()
    assert probs[0, 1] == 0.0
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    rps(np.array([3]), probs)  # scoringrules refuses probabilities outside [0, 1]


def test_the_cdf_inverts_the_published_quantiles():
    rng = np.random.default_rng(5)
    members = np.sort(rng.gamma(2.0, 40.0, size=(200, 30)), axis=-1)
    levels = (0.1, 0.25, 0.5, 0.9)
    quantiles = ensemble_quantiles(members, levels)
    for i, level in enumerate(levels):
        np.testing.assert_allclose(ensemble_cdf(members, quantiles[:, i]), level, atol=1e-9)
    assert (ensemble_cdf(members, members[:, 0] - 1) == 0).all()
    assert (ensemble_cdf(members, members[:, -1] + 1) == 1).all()


def _overconfident(n: int, weight: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True tercile probabilities, categories drawn from them, and a forecast that is the
    truth stretched away from 1/3 so that shrinking it by ``weight`` gives the truth back."""
    rng = np.random.default_rng(seed)
    low = (1.0 - weight) / 3.0  # keeps the stretched forecast inside [0, 1]
    raw = rng.dirichlet(np.ones(3), size=n)
    truth = low + (1.0 - 3.0 * low) * raw
    forecast = (truth - (1.0 - weight) / 3.0) / weight
    category = 1 + (rng.uniform(size=n)[:, None] > np.cumsum(truth, axis=1)[:, :2]).sum(1)
    return truth, forecast, category


def test_tercile_weight_recovers_the_shrink_of_an_overconfident_forecast():
    _, forecast, category = _overconfident(200_000, weight=0.6, seed=3)
    climate = np.full_like(forecast, 1.0 / 3.0)
    assert fit_tercile_weight(forecast, climate, category) == pytest.approx(0.6, abs=0.02)


def test_tercile_weight_minimises_the_rps_and_keeps_probabilities_summing_to_one():
    _, forecast, category = _overconfident(5_000, weight=0.5, seed=4)
    climate = np.full_like(forecast, 1.0 / 3.0)
    best = fit_tercile_weight(forecast, climate, category)
    mean_rps = {
        w: float(rps(category, shrink_probabilities(forecast, climate, w)).mean())
        for w in np.linspace(0.0, 1.0, 41)
    }
    assert (
        float(rps(category, shrink_probabilities(forecast, climate, best)).mean())
        <= min(mean_rps.values()) + 1e-12
    )
    np.testing.assert_allclose(shrink_probabilities(forecast, climate, best).sum(-1), 1.0)


def test_tercile_weight_is_clipped_for_a_forecast_that_is_worse_than_climatology():
    truth, _, category = _overconfident(5_000, weight=0.5, seed=5)
    backwards = truth[:, ::-1]  # above-normal probability where below-normal is likely
    climate = np.full_like(truth, 1.0 / 3.0)
    assert fit_tercile_weight(backwards, climate, category) == 0.0
    assert fit_tercile_weight(truth, climate, category) == pytest.approx(1.0, abs=0.1)


def _month_ratios(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted ratio members ``[12, K, lat, lon]``, a valid mask (two cells off) and the
    target months of 6 origins."""
    ratios = np.sort(rng.gamma(4.0, 0.25, (12, 9, 5, 8)), axis=1)
    valid = np.ones((5, 8), dtype=bool)
    valid[0, :2] = False
    return ratios, valid, rng.integers(0, 12, 6)


def test_mean_crps_origin_by_origin_equals_the_whole_array_bitwise() -> None:
    rng = np.random.default_rng(5)
    ratios, valid, month = _month_ratios(rng)
    obs = rng.gamma(2.0, 50.0, (6, int(valid.sum())))
    point = rng.gamma(2.0, 50.0, (6, int(valid.sum()))).astype(np.float32)
    whole_ratios = np.moveaxis(ratios[month][..., valid], 1, -1)  # [S, N, K]
    for scale in (0.3, 1.0, 1.7):
        whole = float(crps(obs, dressed_members(point, whole_ratios, scale)).mean())
        assert mean_crps(obs, point, ratios, month, valid, scale) == whole
    clim_mean = rng.gamma(2.0, 50.0, (12, 5, 8))
    reference = Predictive(ratios, np.zeros((12, 2, 5, 8)), np.ones(1), clim_mean)
    whole = float(crps(obs, reference.reference_members(month, valid)).mean())
    assert mean_reference_crps(obs, ratios, clim_mean, month, valid) == whole


def test_tercile_probabilities_origin_by_origin_equal_the_whole_array() -> None:
    rng = np.random.default_rng(6)
    ratios, valid, month = _month_ratios(rng)
    clim_mean = rng.gamma(2.0, 50.0, (12, 5, 8))
    edges = np.sort(rng.gamma(2.0, 50.0, (12, 2, 5, 8)), axis=1)
    dressed = Predictive(ratios, edges, np.array([0.7]), clim_mean)
    point = rng.gamma(2.0, 50.0, (6, 5, 8))
    raw, climate = lead_tercile_probabilities(dressed, point, month, 0, valid)
    members = dressed.lead_members(point, month, 0, valid)
    assert np.array_equal(raw, dressed.lead_probabilities(members, month, None, valid))
    reference = dressed.reference_members(month, valid)
    assert np.array_equal(climate, dressed.lead_probabilities(reference, month, None, valid))


def _msess(forecast: np.ndarray, obs: np.ndarray, clim: np.ndarray) -> float:
    return 1.0 - float(np.mean((forecast - obs) ** 2) / np.mean((clim - obs) ** 2))


def _fold_sums(forecast: np.ndarray, obs: np.ndarray, clim: np.ndarray, folds: int = 5):
    """``[K, 4, H]`` sums of contiguous blocks of origins, in anomaly units (climatology 0),
    as the gating stage's fold copies give them."""
    f, o = forecast - clim, obs - clim
    blocks = np.array_split(np.arange(len(f)), folds)
    sums = [
        [
            (f[b] * o[b]).sum((0, 2, 3)),
            (f[b] ** 2).sum((0, 2, 3)),
            (o[b] ** 2).sum((0, 2, 3)),
            np.full(f.shape[1], f[b].size / f.shape[1]),
        ]
        for b in blocks
    ]
    return np.array(sums)


def _cv_weights(forecast, obs, clim, margin: float = 1.0) -> np.ndarray:
    return cross_validated_climatology_weights(_fold_sums(forecast, obs, clim), margin)[0]


def test_climatology_weight_drops_a_forecast_without_skill_and_keeps_a_skilful_one():
    rng = np.random.default_rng(11)
    shape = (120, 12, 6, 7)
    clim = np.full(shape, 100.0)
    signal = rng.normal(0.0, 20.0, shape)
    obs = clim + signal + rng.normal(0.0, 20.0, shape)
    noise = clim + rng.normal(0.0, 20.0, shape)  # no relation to the observations
    skilful = clim + signal
    noise_weights = _cv_weights(noise, obs, clim)
    # a one-SE margin lets a chance gain through at about one lead in six, at a tiny weight
    assert (noise_weights == 0).sum() >= 9 and noise_weights.max() < 0.05
    np.testing.assert_allclose(_cv_weights(skilful, obs, clim), 1.0, atol=0.05)
    halfway = clim + 2.0 * signal  # twice too strong: the best weight is one half
    np.testing.assert_allclose(_cv_weights(halfway, obs, clim), 0.5, atol=0.05)
    weights, report = cross_validated_climatology_weights(_fold_sums(clim, obs, clim), 1.0)
    np.testing.assert_array_equal(weights, 0.0)  # climatology itself: nothing to keep
    np.testing.assert_allclose(report["cv_mse_ratio_by_lead"], 1.0)


def test_a_gain_the_folds_do_not_confirm_is_not_kept():
    """Skill in one block of five only: the pooled gain is positive, the per-fold gains
    disagree, and the lead forecasts climatology unless the margin is 0."""
    rng = np.random.default_rng(3)
    shape = (100, 2, 5, 5)
    clim = np.zeros(shape)
    signal = rng.normal(0.0, 1.0, shape)
    obs = rng.normal(0.0, 1.0, shape)
    obs[:20] += signal[:20]  # the first block only
    forecast = 0.3 * signal
    np.testing.assert_array_equal(_cv_weights(forecast, obs, clim), 0.0)
    assert (_cv_weights(forecast, obs, clim, margin=0.0) > 0).all()
    # the linear path's own selection (each fold standardised as the test is) confirmed the
    # first lead: it keeps its least-squares weight
    weights, report = cross_validated_climatology_weights(
        _fold_sums(forecast, obs, clim), 1.0, np.array([True, False])
    )
    assert weights[0] == report["least_squares_weight_by_lead"][0] > 0 and weights[1] == 0


def test_a_forecast_of_pure_noise_falls_back_to_climatology_and_its_coverage():
    """Weights and spread fitted on the first origins, scored on the later ones."""
    predictive, _, obs, month, valid = _calibrated_case(n_origins=120, seed=5)
    rng = np.random.default_rng(6)
    clim = np.ones_like(obs)
    noise = np.maximum(1.0 + rng.normal(0.0, 0.5, obs.shape), 0.0)
    fit, score = slice(0, 60), slice(60, 120)
    weights = _cv_weights(noise[fit], obs[fit], clim[fit])
    shrunk = shrink_to_climatology(noise, clim, weights)
    floors = spread_floors(shrunk[fit], obs[fit], clim[fit], valid)
    scales, _ = fit_spread_scales(
        shrunk[fit], obs[fit], month[fit], predictive.ratios, valid, (0.2, 2.0), floors
    )
    assert _msess(shrunk[score], obs[score], clim[score]) == pytest.approx(0.0, abs=0.002)
    assert _msess(noise[score], obs[score], clim[score]) < -0.1  # what it would have cost
    dressed = Predictive(predictive.ratios, predictive.edges, scales, predictive.clim_mean)

    def members_at(h, rows):
        return dressed.lead_members(shrunk[score][rows, h], month[score][rows, h], h, valid)

    sums = distribution_sums(members_at, obs[score], month[score], dressed, valid, (0.1, 0.5, 0.9))
    reference = distribution_sums(
        lambda h, rows: dressed.reference_members(month[score][rows, h], valid),
        obs[score],
        month[score],
        dressed,
        valid,
        (0.1, 0.5, 0.9),
    )
    overall = probabilistic_scores(sums, reference, {"all": valid}, valid)["overall"]
    assert overall["coverage"] == pytest.approx(0.8, abs=0.03)
    assert overall["crpss"] >= -0.002


def test_the_spread_floor_is_the_square_root_of_the_error_ratio():
    rng = np.random.default_rng(2)
    shape = (200, 12, 5, 5)
    clim = np.zeros(shape)
    signal = rng.normal(0.0, 1.0, shape)
    obs = signal + rng.normal(0.0, 1.0, shape)
    valid = np.ones(shape[2:], dtype=bool)
    np.testing.assert_allclose(spread_floors(signal, obs, clim, valid), np.sqrt(0.5), atol=0.02)
    np.testing.assert_array_equal(spread_floors(clim, obs, clim, valid), 1.0)
    worse = spread_floors(signal * 3.0, obs, clim, valid)
    np.testing.assert_array_equal(worse, 1.0)  # never wider than climatology's own spread


def test_an_overconfident_fit_is_held_at_the_floor():
    predictive, point, obs, month, valid = _calibrated_case(spread=0.5, n_origins=30)
    floors = np.full(12, 0.9)
    scales, report = fit_spread_scales(
        point, obs, month, predictive.ratios, valid, bounds=(0.1, 2.0), floors=floors
    )
    np.testing.assert_allclose(scales, 0.9)  # the CRPS alone would pick about 0.5
    assert all(row["floor"] == 0.9 for row in report)


def test_cross_validated_floors_follow_the_skill_the_folds_confirmed():
    """sqrt(CV MSE of the chosen penalty / climatology's), and exactly 1 where a lead
    forecasts climatology: no distribution narrower than the whole record's skill supports."""
    from ames.evaluation.ridge import CLIMATOLOGY, RidgeBaseline
    from ames.workflows.probabilistic import cross_validated_floors

    alphas = (10.0, 1e3, CLIMATOLOGY)
    cv_mse = np.array([[0.64, 0.99, 1.2], [0.81, 0.95, 1.1], [1.0, 1.0, 1.0]])  # [A, H]
    linear = RidgeBaseline(
        coef=np.zeros((3, 2)),
        intercept=np.zeros(3),
        alpha=np.array([10.0, 1e3, CLIMATOLOGY]),
        cv_mse=cv_mse,
        alphas=alphas,
        window=1,
    )
    np.testing.assert_allclose(cross_validated_floors(linear), [0.8, np.sqrt(0.95), 1.0])


def test_tercile_weights_are_0_where_the_folds_confirm_no_skill():
    """A lead whose cross-validated floor is 1 (the whole record found no skill) publishes
    climatology's tercile probabilities, however well the validation origins fit it."""
    from ames.workflows.probabilistic import fit_tercile_weights, tercile_weight_caps

    predictive, _, obs, month, valid = _calibrated_case(n_origins=40)
    point = 0.5 * obs + 0.5  # an informative forecast: its fitted weight is well above 0
    caps = tercile_weight_caps(np.array([1.0, 1.2] + [0.9] * 10))
    np.testing.assert_array_equal(caps, [0.0, 0.0] + [1.0] * 10)
    reports = [{"by_lead": [{} for _ in range(12)]} for _ in range(2)]
    free = fit_tercile_weights(predictive, point, obs, month, valid, reports[0])
    capped = fit_tercile_weights(predictive, point, obs, month, valid, reports[1], caps)
    assert (free[:2] > 0.3).all()
    np.testing.assert_array_equal(capped[:2], 0.0)
    np.testing.assert_array_equal(capped[2:], free[2:])
    for row in reports[1]["by_lead"][:2]:
        assert row["rps_calibrated"] == pytest.approx(row["rps_climatology"])
        assert row["tercile_weight_validation"] > 0.3
