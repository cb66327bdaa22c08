import math

import numpy as np
import pytest
import torch

from ames.physics import (
    elevation_priors,
    mass_conservation_loss,
    orographic_loss,
    windward_leeward,
)

E1, E2, E3 = 0, 1, 2  # high, low, medium


def test_priors_favour_the_zone_expert_and_sum_to_one() -> None:
    priors = elevation_priors(np.array([1000.0, 2500.0, 3500.0]))
    assert priors.shape == (3, 3)
    np.testing.assert_allclose(priors.sum(axis=0), 1.0, rtol=1e-12)
    assert list(priors.argmax(axis=0)) == [E2, E3, E1]


def test_priors_match_the_formula() -> None:
    z = 2800.0
    raw = [
        1 / (1 + math.exp(-(z - 3000) / 500)),
        1 / (1 + math.exp(-(2000 - z) / 500)),
        math.exp(-0.5 * ((z - 2500) / 500) ** 2),
    ]
    expected = np.array(raw) / sum(raw)
    np.testing.assert_allclose(elevation_priors(np.array(z)), expected, rtol=1e-12)


def test_priors_follow_thresholds_and_keep_input_kind() -> None:
    z = torch.tensor([[1400.0, 1900.0]], dtype=torch.float32)
    priors = elevation_priors(z, high_min_m=1800.0, low_max_m=1200.0, scale_m=200.0)
    assert isinstance(priors, torch.Tensor) and priors.shape == (3, 1, 2)
    assert priors[:, 0, 0].argmax() == E3 and priors[:, 0, 1].argmax() == E1
    nan_priors = elevation_priors(np.array([np.nan], dtype=np.float32))
    assert nan_priors.dtype == np.float32 and np.isnan(nan_priors).all()


def test_priors_reject_inverted_thresholds() -> None:
    with pytest.raises(ValueError, match="high_min_m"):
        elevation_priors(np.zeros(2), high_min_m=1000.0, low_max_m=2000.0)


def _slope_aspect(z: np.ndarray, spacing_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope and aspect (direction faced, clockwise from north) on an ascending lat/lon grid."""
    dz_north, dz_east = np.gradient(z, spacing_m)
    slope = np.degrees(np.arctan(np.hypot(dz_north, dz_east)))
    aspect = np.degrees(np.arctan2(-dz_east, -dz_north)) % 360.0
    return slope, aspect


@pytest.fixture
def ns_ridge() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ridge running north–south along the middle column; columns increase eastward."""
    east_km = np.linspace(-50.0, 50.0, 41)
    z = 3000.0 * np.exp(-((east_km / 15.0) ** 2))
    z = np.tile(z, (9, 1))
    slope, aspect = _slope_aspect(z, spacing_m=2500.0)
    return east_km, slope, aspect


def test_easterly_wind_east_flank_windward_west_flank_leeward(ns_ridge) -> None:
    east_km, slope, aspect = ns_ridge
    windward, leeward = windward_leeward(aspect, slope, wind_from_deg=90.0)
    east_flank = (east_km > 5) & (east_km < 30)
    west_flank = (east_km < -5) & (east_km > -30)
    row = 4
    np.testing.assert_allclose(windward[row, east_flank], 1.0, atol=1e-6)
    np.testing.assert_allclose(leeward[row, east_flank], 0.0, atol=1e-6)
    np.testing.assert_allclose(leeward[row, west_flank], 1.0, atol=1e-6)
    np.testing.assert_allclose(windward[row, west_flank], 0.0, atol=1e-6)
    flat = np.abs(east_km) > 45  # far from the ridge: slope below the threshold
    assert (windward[row, flat] == 0).all() and (leeward[row, flat] == 0).all()


def test_rotating_the_wind_moves_the_exposure(ns_ridge) -> None:
    east_km, slope, aspect = ns_ridge
    east_flank = (east_km > 5) & (east_km < 30)
    windward, leeward = windward_leeward(aspect, slope, wind_from_deg=270.0)
    np.testing.assert_allclose(windward[4, east_flank], 0.0, atol=1e-6)
    np.testing.assert_allclose(leeward[4, east_flank], 1.0, atol=1e-6)
    windward, leeward = windward_leeward(aspect, slope, wind_from_deg=0.0)
    assert windward.max() < 1e-6 and leeward.max() < 1e-6  # wind along the ridge
    windward, _ = windward_leeward(aspect, slope, wind_from_deg=45.0)
    np.testing.assert_allclose(windward[4, east_flank], math.cos(math.radians(45)), atol=1e-6)


def test_windward_handles_nan_and_flat_cells() -> None:
    aspect = torch.tensor([90.0, float("nan"), 90.0, 270.0])
    slope = torch.tensor([5.0, 5.0, 0.1, float("nan")])
    windward, leeward = windward_leeward(aspect, slope)
    assert torch.equal(windward, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert torch.equal(leeward, torch.zeros(4))


@pytest.fixture
def small_case() -> dict[str, torch.Tensor]:
    """B=1, H=2 on a 2×2 grid; cell (1, 1) is invalid (NaN target, outside ``valid``)."""
    nan = float("nan")
    target = torch.tensor([[[[100.0, 200.0], [300.0, nan]], [[50.0, 50.0], [100.0, nan]]]])
    pred = torch.tensor([[[[110.0, 150.0], [300.0, 999.0]], [[60.0, 70.0], [70.0, 999.0]]]])
    valid = torch.tensor([[True, True], [True, False]])
    high = torch.tensor([[False, True], [True, True]])  # (1, 1) high but invalid
    return {"target": target, "pred": pred.requires_grad_(True), "valid": valid, "high": high}


def test_mass_conservation_loss_by_hand(small_case) -> None:
    loss = mass_conservation_loss(small_case["pred"], small_case["target"], small_case["valid"])
    # lead 1: |560 − 600| / 600; lead 2: |200 − 200| / 200; mean over (sample, lead)
    assert loss.item() == pytest.approx((40 / 600 + 0.0) / 2, rel=1e-6)
    # the NaN target alone (no valid mask) must be enough to exclude the cell
    alone = mass_conservation_loss(small_case["pred"], small_case["target"])
    assert alone.item() == pytest.approx(loss.item(), rel=1e-6)


def test_orographic_loss_by_hand(small_case) -> None:
    loss = orographic_loss(small_case["pred"], small_case["target"], small_case["high"], 200.0)
    # high valid cells (0, 1), (1, 0) over both leads: shortfalls 50, 0, 0, 30
    assert loss.item() == pytest.approx((50 + 0 + 0 + 30) / 4 / 200.0, rel=1e-6)


def test_physics_losses_have_finite_gradients(small_case) -> None:
    pred = small_case["pred"]
    total = mass_conservation_loss(pred, small_case["target"], small_case["valid"])
    total = total + orographic_loss(pred, small_case["target"], small_case["high"], 200.0)
    total.backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[..., 1, 1] == 0).all()
    assert pred.grad[0, 1, 1, 0] < 0  # under-predicted high cell: raising it lowers L_oro


def test_orographic_loss_without_high_cells_is_zero(small_case) -> None:
    no_high = torch.zeros(2, 2, dtype=torch.bool)
    loss = orographic_loss(small_case["pred"], small_case["target"], no_high, 200.0)
    assert loss.item() == 0.0 and loss.requires_grad
