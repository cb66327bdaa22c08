import math

import numpy as np
import pytest
import torch
from torch import nn

from ames.config import GatingModel, LossWeights, MetaConfig
from ames.data.schema import PREVAILING_WIND_ATTR
from ames.models.ames import (
    AMESModel,
    PhysicsContext,
    StaticFields,
    ames_loss,
    build_ames_model,
    build_gating,
    build_meta,
    routing_by_band,
)
from ames.models.gating import PhysicsGuidedGating, routing_diversity_penalty
from ames.models.meta import PhysicsInformedMetaLearner, weighted_forecast
from ames.physics import elevation_priors
from ames.windows import TargetTransform
from ames.workflows.ames_model import prevailing_wind

H, W, C = 12, 3, 8
N_LAT, N_LON = 5, 6


class DummyExpert(nn.Module):
    """Linear map of the last input month's channels to H leads, plus a constant offset."""

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(C, H)
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, -1].permute(0, 2, 3, 1)).permute(0, 3, 1, 2) + self.offset


def make_statics(n_lat: int = N_LAT, n_lon: int = N_LON, seed: int = 0) -> StaticFields:
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    elevation = np.linspace(500.0, 4000.0, n_lat * n_lon).reshape(n_lat, n_lon)
    context = np.stack(
        [
            elevation,
            rng.uniform(0.0, 10.0, (n_lat, n_lon)),
            rng.uniform(0.0, 360.0, (n_lat, n_lon)),
            4.4 + 0.05 * lat,
            -74.9 + 0.05 * lon,
        ],
        axis=-1,
    )
    valid = np.ones((n_lat, n_lon), dtype=bool)
    valid[0, 0] = False
    context[0, 0] = np.nan
    return StaticFields.from_masks(
        context,
        np.nanmean(context, axis=(0, 1)),
        np.nanstd(context, axis=(0, 1)),
        valid,
        np.nan_to_num(context[..., 0]) > 3000.0,
    )


def make_transform(n_lat: int = N_LAT, n_lon: int = N_LON) -> TargetTransform:
    rng = np.random.default_rng(1)
    clim_mean = rng.uniform(100.0, 300.0, (12, n_lat, n_lon)).astype(np.float32)
    clim_std = rng.uniform(20.0, 60.0, (12, n_lat, n_lon)).astype(np.float32)
    return TargetTransform("anomaly", clim_mean, clim_std, 45.0, 187.0, 90.0)


def make_batch(transform: TargetTransform, statics: StaticFields, batch: int = 4) -> dict:
    gen = torch.Generator().manual_seed(2)
    origin_month = torch.arange(batch) % 12
    target_month = (origin_month[:, None] + 1 + torch.arange(H)) % 12
    y_mm = 200.0 * torch.rand(batch, H, N_LAT, N_LON, generator=gen)
    y_mm[..., ~torch.as_tensor(statics.valid)] = float("nan")
    return {
        "x": torch.randn(batch, W, C, N_LAT, N_LON, generator=gen),
        "y": transform.from_mm(y_mm, target_month),
        "y_mm": y_mm,
        "target_month": target_month,
        "origin_month": origin_month,
        "origin": torch.arange(batch),
    }


def gating_model(**keys) -> GatingModel:
    return GatingModel(**{"mode": "learned", **keys})


def meta_config(**keys) -> MetaConfig:
    return MetaConfig(**{"enabled": True, **keys})


def make_model(gating_cfg: dict | None = None, meta_cfg: dict | None = None, offsets=(0, 0, 0)):
    torch.manual_seed(0)
    statics = make_statics()
    transform = make_transform()
    experts = [DummyExpert(o) for o in offsets]
    model = build_ames_model(
        experts,
        transform,
        statics,
        gating_model(**(gating_cfg or {})),
        meta_config(wind_from_deg=90.0, **(meta_cfg or {})),
        horizon=H,
    )
    return model, statics, transform


def make_gating(**kwargs) -> PhysicsGuidedGating:
    statics = make_statics()
    return PhysicsGuidedGating(elevation_priors(statics.elevation_m), statics.context_z, **kwargs)


# --- gating -----------------------------------------------------------------------------


def test_gating_starts_at_alpha_0_3_and_mixes_priors() -> None:
    gating = make_gating().eval()
    months = torch.tensor([0, 6])
    weights = gating(months)
    assert weights.shape == (2, 3, N_LAT, N_LON)
    assert gating.alpha.item() == pytest.approx(0.3, abs=1e-6)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, N_LAT, N_LON))
    expected = 0.3 * gating.priors + 0.7 * gating.data_weights(months)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(gating.priors[:, 0, 0], torch.full((3,), 1 / 3))  # NaN cell


def test_fixed_alpha_stays_fixed_under_training() -> None:
    gating = make_gating(fixed_alpha=0.0)
    theta_before = gating.theta.detach().clone()
    optimizer = torch.optim.AdamW(gating.parameters(), lr=0.1, weight_decay=1e-2)
    for month in range(3):
        optimizer.zero_grad()
        weights = gating(torch.tensor([month]))
        (weights[:, 0] ** 2).mean().backward()
        optimizer.step()
    assert gating.theta.grad is None and not gating.theta.requires_grad
    assert torch.equal(gating.theta, theta_before)
    assert gating.alpha.item() == 0.0
    gating.eval()
    torch.testing.assert_close(gating(torch.tensor([1])), gating.data_weights(torch.tensor([1])))


def test_learned_alpha_receives_gradient() -> None:
    gating = make_gating()
    (gating(torch.tensor([3]))[:, 0] ** 2).mean().backward()
    assert gating.theta.grad is not None and gating.theta.grad.abs() > 0


def test_equal_and_single_modes() -> None:
    equal = make_gating(mode="equal")(torch.tensor([0, 5]))
    torch.testing.assert_close(equal, torch.full((2, 3, N_LAT, N_LON), 1 / 3))
    single = make_gating(mode="single", single_expert=2)(torch.tensor([0]))
    assert (single[:, 1] == 1).all() and (single[:, [0, 2]] == 0).all()
    assert not any(p.requires_grad for p in make_gating(mode="equal").parameters())
    with pytest.raises(ValueError, match="single_expert"):
        make_gating(mode="single")
    with pytest.raises(ValueError, match="mode"):
        make_gating(mode="softmax")


def test_diversity_penalty_is_zero_for_balanced_and_log3_for_collapsed_routing() -> None:
    balanced = torch.full((2, 3, 4, 4), 1 / 3)
    assert routing_diversity_penalty(balanced).item() == pytest.approx(0.0, abs=1e-7)
    collapsed = torch.zeros(2, 3, 4, 4)
    collapsed[:, 1] = 1.0
    assert routing_diversity_penalty(collapsed).item() == pytest.approx(math.log(3), rel=1e-5)
    mixed = torch.zeros(1, 3, 1, 3)  # each cell one expert, but all three used: balanced
    mixed[0, 0, 0, 0] = mixed[0, 1, 0, 1] = mixed[0, 2, 0, 2] = 1.0
    assert routing_diversity_penalty(mixed).item() == pytest.approx(0.0, abs=1e-6)
    valid = torch.tensor([[True, True, False]])
    assert routing_diversity_penalty(mixed, valid).item() == pytest.approx(math.log(1.5), rel=1e-5)


# --- meta-learner -----------------------------------------------------------------------


def _meta_inputs(statics: StaticFields, batch: int = 2, level: float = 0.0):
    gen = torch.Generator().manual_seed(3)
    experts_t = torch.randn(batch, 3, H, N_LAT, N_LON, generator=gen) + level
    experts_mm = 45.0 * experts_t + 150.0
    weights = torch.softmax(torch.randn(batch, 3, N_LAT, N_LON, generator=gen), dim=1)
    scale = torch.full((batch, H, N_LAT, N_LON), 45.0)
    return experts_t, experts_mm, weights, torch.tensor([1, 7])[:batch], scale


def test_meta_disabled_is_exactly_relu_of_weighted_sum() -> None:
    statics = make_statics()
    meta = build_meta(statics, meta_config(enabled=False), H)
    inputs = _meta_inputs(statics, level=-2.0)
    expected = torch.relu((inputs[2].unsqueeze(2) * inputs[1]).sum(dim=1))
    # same function, but the kernels may sum in another order on another CPU
    torch.testing.assert_close(meta(*inputs), expected, rtol=1e-6, atol=1e-4)
    assert not any(p.requires_grad for p in meta.parameters())


@pytest.mark.parametrize("wind_from_deg", [90.0, 270.0, None])
def test_untrained_meta_passes_the_weighted_forecast_whatever_the_wind(wind_from_deg) -> None:
    """Default params, any region's wind (or none): untrained means an exact pass-through."""
    statics = make_statics()
    meta = build_meta(statics, meta_config(wind_from_deg=wind_from_deg), H)
    inputs = _meta_inputs(statics)
    expected = torch.relu(weighted_forecast(inputs[1], inputs[2]))
    assert meta(*inputs).equal(expected)
    assert meta.orographic_enhancement.item() == meta.rain_shadow_suppression.item() == 0.0


def test_without_a_wind_the_orographic_terms_are_off_and_frozen() -> None:
    statics = make_statics()
    meta = build_meta(statics, meta_config(orographic_init=0.05, rain_shadow_init=0.05), H)
    assert not meta.physics_terms
    assert not meta.orographic_enhancement.requires_grad
    assert not meta.rain_shadow_suppression.requires_grad
    assert meta.physics_correction(torch.full((1, H, N_LAT, N_LON), 100.0)).abs().max() == 0


def test_the_wind_comes_from_params_else_the_dataset_else_none(caplog) -> None:
    assert prevailing_wind(meta_config(wind_from_deg=270.0), {PREVAILING_WIND_ATTR: 83.6}) == 270.0
    assert prevailing_wind(meta_config(), {PREVAILING_WIND_ATTR: 83.6}) == 83.6
    with caplog.at_level("WARNING"):
        assert prevailing_wind(meta_config(), {"source": "files"}) is None
    assert "meta.wind_from_deg" in caplog.text and "Fix:" in caplog.text


def test_the_meta_learner_keeps_the_wind_it_was_built_with() -> None:
    """The finetune summary reports this wind rather than resolving it (and warning) again."""
    statics = make_statics()
    assert build_meta(statics, meta_config(wind_from_deg=270.0), H).wind_from_deg == 270.0
    assert build_meta(statics, meta_config(), H).wind_from_deg is None


def test_physics_correction_enhances_windward_high_and_suppresses_leeward() -> None:
    shape = (3, 3)
    slope = np.full(shape, 10.0)
    aspect = np.array([[90.0, 270.0, 0.0]] * 3)  # east-, west-, north-facing columns
    high = np.zeros(shape, dtype=bool)
    high[:, 0] = True
    meta = PhysicsInformedMetaLearner(
        np.zeros((5, *shape)),
        slope,
        aspect,
        high,
        horizon=1,
        wind_from_deg=90.0,
        orographic_init=0.05,
        rain_shadow_init=0.05,
    )
    weighted = torch.full((1, 1, *shape), 100.0)
    correction = meta.physics_correction(weighted)[0, 0]
    torch.testing.assert_close(correction[:, 0], torch.full((3,), 5.0))  # 0.05 × 1 × 100
    torch.testing.assert_close(correction[:, 1], torch.full((3,), -5.0))
    torch.testing.assert_close(correction[:, 2], torch.zeros(3), atol=1e-5, rtol=0)


# --- composed model ---------------------------------------------------------------------


def test_forward_shapes_and_non_negative_output_with_negative_experts() -> None:
    model, statics, transform = make_model(offsets=(-50.0, -80.0, -60.0))
    batch = make_batch(transform, statics)
    out = model(batch)
    assert out["pred_mm"].shape == (4, H, N_LAT, N_LON)
    assert out["experts_mm"].shape == (4, 3, H, N_LAT, N_LON)
    assert out["weights"].shape == (4, 3, N_LAT, N_LON)
    assert (out["experts_mm"] < 0).all()
    assert (out["pred_mm"] >= 0).all()
    for i in range(3):
        torch.testing.assert_close(
            out["experts_mm"][:, i], transform.to_mm(out["experts"][:, i], batch["target_month"])
        )


@pytest.mark.parametrize("optimise", ["gating", "everything"])
def test_gating_only_training_leaves_experts_bitwise_unchanged(optimise: str) -> None:
    model, statics, transform = make_model(gating_cfg={"hidden_sizes": (8,)})
    batch = make_batch(transform, statics)
    ctx = PhysicsContext.from_statics(statics, train_mean_mm=150.0)
    experts_before = [p.detach().clone() for p in model.expert_parameters()]
    gating_before = [p.detach().clone() for p in model.gating_parameters()]
    model.freeze_experts()
    model.train()
    assert not model.experts.training
    # "everything": frozen experts get no gradient, so AdamW (weight decay included) skips them
    params = model.gating_parameters() if optimise == "gating" else model.parameters()
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        loss, _ = ames_loss(model(batch), batch, LossWeights(lambda_div=0.01), ctx)
        loss.backward()
        optimizer.step()
    for before, after in zip(experts_before, model.expert_parameters(), strict=True):
        assert torch.equal(before, after) and after.grad is None
    gating_after = list(model.gating_parameters())
    assert any(not torch.equal(b, a) for b, a in zip(gating_before, gating_after, strict=True))


def test_stage3_loss_components_and_finite_gradients() -> None:
    model, statics, transform = make_model()
    batch = make_batch(transform, statics)
    ctx = PhysicsContext.from_statics(statics, train_mean_mm=150.0)
    cfg = LossWeights(lambda_mass=0.05, lambda_oro=0.1)
    out = model(batch)
    loss, parts = ames_loss(out, batch, cfg, ctx)
    assert set(parts) == {"mse", "l_mass", "l_oro", "diversity", "loss"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in parts.values())
    expected = parts["mse"] + 0.05 * parts["l_mass"] + 0.1 * parts["l_oro"]
    assert parts["loss"] == pytest.approx(expected, rel=1e-5)
    mse_by_hand = ((out["pred"] - batch["y"])[..., torch.as_tensor(statics.valid)] ** 2).mean()
    assert parts["mse"] == pytest.approx(mse_by_hand.item(), rel=1e-5)
    loss.backward()
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    assert model.meta.orographic_enhancement.grad is not None


def test_parameter_counts_by_component() -> None:
    model, _, _ = make_model(gating_cfg={"hidden_sizes": (8,)}, meta_cfg={"hidden_sizes": (16,)})
    counts = model.count_parameters_by_component()
    per_expert = C * H + H
    assert counts["expert1"] == counts["expert2"] == counts["expert3"] == per_expert
    assert counts["gating"] == 1 + (7 * 8 + 8) + (8 * 3 + 3)
    assert counts["meta"] == 2 + ((3 * H + 7) * 16 + 16) + (16 * H + H)
    assert counts["total"] == 3 * per_expert + counts["gating"] + counts["meta"]


def test_paper_profile_sizes_are_near_5k_and_12k() -> None:
    statics = make_statics(61, 65)
    gating = build_gating(statics, gating_model(hidden_sizes=(64, 64)))
    meta = build_meta(statics, meta_config(hidden_sizes=(96, 64)), horizon=12)
    n_gating = sum(p.numel() for p in gating.parameters())
    n_meta = sum(p.numel() for p in meta.parameters())
    assert 0.7 * 5_000 <= n_gating <= 1.3 * 5_000
    assert 0.7 * 12_000 <= n_meta <= 1.3 * 12_000


def test_routing_by_band() -> None:
    elevation = np.array([[4000.0, 3200.0, 2700.0], [2200.0, 1000.0, np.nan]])
    valid = np.array([[True, True, True], [True, False, False]])
    weights = torch.zeros(2, 3, 2, 3)
    weights[0, 0] = 1.0
    weights[1, 1] = 1.0
    table = routing_by_band(weights, elevation, valid)
    assert list(table) == ["gt3500", "3000_3500", "2500_3000", "2000_2500", "1500_2000", "lt1500"]
    assert table["gt3500"] == {"expert1": 0.5, "expert2": 0.5, "expert3": 0.0, "cells": 1}
    assert table["lt1500"] == {"expert1": None, "expert2": None, "expert3": None, "cells": 0}
    assert sum(row["cells"] for row in table.values()) == 4


def test_built_model_is_an_ames_model_with_config_switches() -> None:
    model, statics, transform = make_model(
        gating_cfg={"mode": "single", "single_expert": 2},
        meta_cfg={"enabled": False},
    )
    assert isinstance(model, AMESModel)
    out = model(make_batch(transform, statics))
    assert torch.equal(out["pred_mm"], torch.relu(out["experts_mm"][:, 1]))


def test_checkpoints_load_across_ablation_switches() -> None:
    learned, _, _ = make_model()
    ablated, _, _ = make_model(
        gating_cfg={"mode": "equal", "fixed_alpha": 0.0}, meta_cfg={"enabled": False}
    )
    ablated.load_state_dict(learned.state_dict(), strict=True)
    assert torch.equal(ablated.gating.theta, learned.gating.theta)


def test_a_lead_given_to_an_expert_publishes_that_experts_forecast_alone():
    model, statics, transform = make_model(offsets=(-30.0, 40.0, 10.0))
    model.eval()
    batch = make_batch(transform, statics)
    with torch.no_grad():
        mixture = model(batch)
        model.publish_experts([-1] * (H - 2) + [1, 0])
        out = model(batch)
    torch.testing.assert_close(out["pred_mm"][:, : H - 2], mixture["pred_mm"][:, : H - 2])
    torch.testing.assert_close(
        out["pred_mm"][:, H - 2], out["experts_mm"][:, 1, H - 2].clamp_min(0)
    )
    torch.testing.assert_close(
        out["pred_mm"][:, H - 1], out["experts_mm"][:, 0, H - 1].clamp_min(0)
    )
    assert (out["pred_mm"][:, H - 1] - mixture["pred_mm"][:, H - 1]).abs().max() > 1.0
    assert model.state_dict()["expert_by_lead"].tolist()[-2:] == [1, 0]  # saved with it
    with pytest.raises(ValueError, match="expert_by_lead"):
        model.publish_experts([3] * H)
