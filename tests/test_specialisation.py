"""Specialisation on a tiny grid (issue 30, item 4): each zone's expert wins in its zone and
the gating learns to route each zone to it; frozen to equal weights, it does not.

The real pieces run as the pipeline runs them: the committed params (default profile), the
experts of ``ames.models.experts`` trained by ``ames.training.engine.fit`` on the whole grid
with the loss masked to their zone (``zone_loss``, ``zone_computation``), then stage 2 with
the experts frozen (``freeze_experts``, the gating stage's loss ``loss_fn``).

**Planted structure.** A 9 × 8 grid in three elevation zones of three rows each (low ≈ 1200 m,
medium ≈ 2500 m, high ≈ 3800 m). Each cell's standardised anomaly is a unit-variance
autoregression whose rule depends only on the zone, and the target (precipitation next
month, ``anomaly`` transform) is that anomaly one month on:

* low: a(t+1) = −0.9 a(t) + noise (a month-to-month sign flip);
* medium: a(t+1) = +0.9 a(t) + noise (persistence);
* high: a(t+1) = −0.9 a(t−1) + noise (a four-month cycle; a(t) says nothing).

The noise variance, 0.19, is the best achievable MSE. An expert sees only its zone's loss, so
it learns that zone's rule and applies it everywhere: on the test block each expert scores
0.19–0.29 in its own zone and 1.0–2.8 in the others (seeds 0–5).

**Why the elevation priors do not already do the job.** The gating blends the priors
(``ames.physics.elevation_priors``: expert 1 high, expert 2 low, expert 3 medium) with a
learned MLP. With the pipeline's zones the priors would already favour each zone's expert
(0.92–0.93 in the high and low zones, 0.64 in the medium) before any learning (at α = 0.3
and an untrained MLP the own weight is ≈ 0.5 there already). So here the experts' zones
are shifted by one (``expertN.zone``, a params key): expert 1 learns the low zone, expert 2
the medium, expert 3 the high. Now the priors favour a wrong expert in every zone (own
expert's prior weight < 0.2, checked below), and the gating must learn to overrule them.

**Why the meta-learner is off** (the ``no_meta_learner`` ablation). Stage 2 trains the
meta-learner with the gating, and its residual MLP reads all three expert forecasts and the
terrain, so it can do the routing itself: with it on (seed 0), the medium zone's own weight
stays at 0.49 and the equal-weight model scores within 5 % of the learned one. Off,
the forecast is Σ wᵢ·expertᵢ and only the gating can route.

**Held-out forecasts.** As in the pipeline's stacking, the gating learns from forecasts of
windows the experts never trained on: the origins are cut in time into the experts'
training block, the gating's training block, a validation block (early stopping of both
stages) and a test block, on which everything is scored.

**Margins.** Seeds 0–5: learned, the own expert's weight is 0.74–0.77 in every zone (the
MLP routes fully; α only falls from 0.30 to 0.25 in the gating's 8 epochs, and the wrong
priors keep that share) and the mixture's MSE is 1.2–1.7 × its expert's; frozen to equal
weights, 1/3 and 3.1–5.7 ×. The checks (≥ 0.5, ≤ 2.5 ×) sit between, and no result
depends on an exact equality, so thread counts and CPUs do not matter.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from config_helpers import ROOT
from graph_fixtures import synthetic_grid_graph
from torch.utils.data import DataLoader

from ames.config import EXPERT_IDS, AmesConfig, load_config
from ames.models.ames import PhysicsContext, StaticFields, build_ames_model
from ames.models.experts import WithExpertOutputs, build_expert, precompute_expert_outputs
from ames.models.losses import masked_mse
from ames.training.engine import fit
from ames.windows import N_CHANNELS, TargetTransform, WindowDataset, build_grid_inputs
from ames.workflows.ames_model import loss_fn
from ames.workflows.expert import zone_computation, zone_loss

N_LAT, N_LON, ROWS_PER_ZONE = 9, 8, 3
ZONES = ("low", "medium", "high")  # bottom to top rows
ZONE_ELEVATION_M = {"low": 1200.0, "medium": 2500.0, "high": 3800.0}  # ± 200 m per cell
# zone: (lag in months, coefficient) of a(t+1) = coefficient · a(t+1−lag) + noise
PLANTED = {"low": (1, -0.9), "medium": (1, 0.9), "high": (2, -0.9)}
# the pipeline's zones shifted by one, so the elevation priors point to a wrong expert
EXPERT_ZONE = {1: "low", 2: "medium", 3: "high"}
N_MONTHS = 480
BLOCKS = {"experts": 0.45, "gating": 0.25, "val": 0.10, "test": 0.20}  # time order
HORIZON = 1
CLIM_MM, SCALE_MM = 100.0, 10.0  # precipitation = 100 + 10 · anomaly mm/month
SEED = 0
CPU = torch.device("cpu")

OWN_WEIGHT_MIN = 0.5  # a zone is routed to its expert: mean weight ≥ 0.5 there
MIXTURE_MSE_MAX = 2.5  # … and the mixture keeps its skill: MSE ≤ 2.5 × its expert's MSE


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny tensors gain nothing from threads (see tests/test_experts.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def zone_masks() -> dict[str, np.ndarray]:
    row_zone = np.arange(N_LAT) // ROWS_PER_ZONE
    rows = np.broadcast_to(row_zone[:, None], (N_LAT, N_LON))
    return {name: rows == k for k, name in enumerate(ZONES)}


def planted_anomalies(zones: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``[T, lat, lon]`` unit-variance anomalies following each zone's planted rule."""
    anomaly = rng.normal(0.0, 1.0, (N_MONTHS, N_LAT, N_LON))
    for t in range(2, N_MONTHS):
        for zone, (lag, coef) in PLANTED.items():
            cells = zones[zone]
            innovation = anomaly[t][cells] * np.sqrt(1.0 - coef**2)
            anomaly[t][cells] = coef * anomaly[t - lag][cells] + innovation
    return anomaly


@dataclasses.dataclass
class TinyRun:
    cfg: AmesConfig
    zones: dict[str, np.ndarray]
    statics: StaticFields
    transform: TargetTransform
    windows: dict[str, WindowDataset]
    experts: list[torch.nn.Module]
    forecasts: dict[str, torch.Tensor]  # block → [S, 3, H, lat, lon], frozen experts
    targets: torch.Tensor  # test block [S, H, lat, lon]


def tiny_config() -> AmesConfig:
    """The committed params, experts on the shifted zones, no meta-learner (module doc);
    the experts' network alone (``linear_path: ridge`` needs the pipeline's run inputs)."""
    cfg = load_config(ROOT / "params.yaml")
    overlay: dict = {f"expert{i}": {"zone": EXPERT_ZONE[i]} for i in EXPERT_IDS}
    cfg = cfg.with_overlay(overlay).with_overlay(cfg.ablations["no_meta_learner"])
    models = {f"expert{i}": {"model": {"linear_path": False}} for i in EXPERT_IDS}
    return cfg.with_overlay(models)


def on_cpu(train_cfg):
    return dataclasses.replace(train_cfg, device="cpu", amp=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> TinyRun:
    """Data, the three experts trained on their zones (stage 1), their frozen forecasts."""
    tmp = tmp_path_factory.mktemp("specialisation")
    cfg = tiny_config()
    window = cfg.features.input_window
    rng = np.random.default_rng(SEED)
    zones = zone_masks()
    rows = np.arange(N_LAT) // ROWS_PER_ZONE
    elevation = np.array([ZONE_ELEVATION_M[z] for z in ZONES])[rows][:, None]
    elevation = elevation + rng.uniform(-200.0, 200.0, (N_LAT, N_LON))
    lat, lon = np.meshgrid(
        4.0 + 0.1 * np.arange(N_LAT), -74.0 + 0.1 * np.arange(N_LON), indexing="ij"
    )
    context = np.stack(
        [
            elevation,
            rng.uniform(0.0, 20.0, elevation.shape),  # slope
            rng.uniform(0.0, 360.0, elevation.shape),  # aspect
            lat,
            lon,
        ],
        axis=-1,
    )
    valid = np.ones((N_LAT, N_LON), dtype=bool)
    anomaly = planted_anomalies(zones, rng)
    months = np.arange(N_MONTHS) % 12
    clim_mean = np.full((12, N_LAT, N_LON), CLIM_MM, dtype=np.float32)
    clim_std = np.full((12, N_LAT, N_LON), SCALE_MM, dtype=np.float32)
    stats = {
        "clim_mean": clim_mean,
        "clim_std": clim_std,
        "context_mean": context.mean(axis=(0, 1)),
        "context_std": context.std(axis=(0, 1)),
    }
    precip = (CLIM_MM + SCALE_MM * anomaly).astype(np.float32)
    inputs = build_grid_inputs(precip, months, context, valid, stats)
    # "anomaly" target: (P − clim mean) / anom_std, i.e. the planted anomaly itself
    transform = TargetTransform("anomaly", clim_mean, clim_std, SCALE_MM, CLIM_MM, SCALE_MM)
    origins = np.arange(window - 1, N_MONTHS - HORIZON)
    cuts = np.cumsum([int(share * len(origins)) for share in BLOCKS.values()])[:-1]
    windows = {
        name: WindowDataset(inputs, block, window, HORIZON, transform)
        for name, block in zip(BLOCKS, np.split(origins, cuts), strict=True)
    }
    statics = StaticFields.from_masks(
        context, stats["context_mean"], stats["context_std"], valid, zones["high"]
    )
    graph = synthetic_grid_graph(valid, n_neighbors=12, seed=SEED)

    experts = []
    for index in EXPERT_IDS:
        section = cfg.expert(index)
        torch.manual_seed(SEED + index)
        expert = build_expert(
            section.architecture,
            section.model,
            n_features=N_CHANNELS,
            window=window,
            horizon=HORIZON,
            graph=graph,
            section=f"expert{index}",
        )
        zone = torch.from_numpy(zones[section.zone])
        with zone_computation(expert, zone, f"expert{index}"):
            fit(
                expert,
                zone_loss(zone),
                windows["experts"],
                windows["val"],
                on_cpu(section.training),
                best_path=tmp / f"expert{index}.pt",
                state_dir=tmp / f"state{index}",
                desc=f"expert{index}",
                loss_mask=zone,
            )
        experts.append(expert.eval())
    forecasts = {
        name: precompute_expert_outputs(experts, windows[name], 64, CPU)
        for name in ("gating", "val", "test")
    }
    targets = torch.stack([item["y"] for item in windows["test"]])
    return TinyRun(cfg, zones, statics, transform, windows, experts, forecasts, targets)


def own_expert(zone: str) -> int:
    """0-based index of the expert trained for ``zone``."""
    return next(i - 1 for i, z in EXPERT_ZONE.items() if z == zone)


def expert_mse(run: TinyRun) -> dict[str, list[float]]:
    """Test-block MSE of each expert alone in each zone (transformed units)."""
    return {
        zone: [
            masked_mse(run.forecasts["test"][:, i], run.targets, torch.from_numpy(cells)).item()
            for i in range(len(run.experts))
        ]
        for zone, cells in run.zones.items()
    }


def test_each_expert_beats_the_others_in_its_zone(run: TinyRun) -> None:
    for zone, mse in expert_mse(run).items():
        own = own_expert(zone)
        others = [m for i, m in enumerate(mse) if i != own]
        assert mse[own] < 0.4, (zone, mse)  # the noise floor is 0.19
        assert mse[own] < 0.5 * min(others), (zone, mse)


def test_the_elevation_priors_alone_route_every_zone_to_a_wrong_expert(run: TinyRun) -> None:
    model = build_ames_model(
        run.experts, run.transform, run.statics, run.cfg.gating.model, run.cfg.meta, HORIZON
    )
    priors = model.gating.priors.numpy()
    for zone, cells in run.zones.items():
        by_expert = priors[:, cells].mean(axis=1)
        assert by_expert[own_expert(zone)] < 0.2, (zone, by_expert)
        assert by_expert.argmax() != own_expert(zone), (zone, by_expert)


def train_stage2(run: TinyRun, cfg: AmesConfig, tmp_path) -> torch.nn.Module:
    """Stage 2 as ``ames.workflows.ames_model.train_gating`` runs it: experts frozen, the
    trainable combination parameters fitted on held-out expert forecasts; a gating with
    nothing to train (``mode: equal``) is kept as built."""
    model = build_ames_model(
        run.experts, run.transform, run.statics, cfg.gating.model, cfg.meta, HORIZON
    )
    model.freeze_experts()
    trainable = [p for p in model.combination_parameters() if p.requires_grad]
    if trainable:
        physics = PhysicsContext.from_statics(run.statics, train_mean_mm=CLIM_MM)
        fit(
            model,
            loss_fn(cfg.gating.loss, physics),
            WithExpertOutputs(run.windows["gating"], run.forecasts["gating"]),
            WithExpertOutputs(run.windows["val"], run.forecasts["val"]),
            on_cpu(cfg.gating.training),
            best_path=tmp_path / "gating.pt",
            state_dir=tmp_path / "gating_state",
            trainable=trainable,
            desc="gating",
        )
    return model.eval()


@torch.no_grad()
def routing_and_mixture(run: TinyRun, model) -> tuple[np.ndarray, torch.Tensor]:
    """Test-block mean routing weights ``[3, lat, lon]`` and forecasts ``[S, H, lat, lon]``."""
    test = WithExpertOutputs(run.windows["test"], run.forecasts["test"])
    weights, preds = [], []
    for batch in DataLoader(test, batch_size=64):
        out = model(batch)
        weights.append(out["weights"])
        preds.append(out["pred"])
    return torch.cat(weights).mean(dim=0).numpy(), torch.cat(preds)


def specialisation_failures(run: TinyRun, model) -> dict[str, list[str]]:
    """Per zone, what the gated model gets wrong: its own expert's mean weight below
    ``OWN_WEIGHT_MIN``, or an MSE above ``MIXTURE_MSE_MAX`` × the own expert's."""
    weights, pred = routing_and_mixture(run, model)
    mse_alone = expert_mse(run)
    failures = {}
    for zone, cells in run.zones.items():
        own = own_expert(zone)
        weight = float(weights[own][cells].mean())
        mse = masked_mse(pred, run.targets, torch.from_numpy(cells)).item()
        ratio = mse / mse_alone[zone][own]
        failures[zone] = [
            *([f"own weight {weight:.3f}"] if weight < OWN_WEIGHT_MIN else []),
            *([f"MSE {ratio:.2f} × its expert's"] if ratio > MIXTURE_MSE_MAX else []),
        ]
    return failures


@pytest.mark.parametrize("gating", ["learned", "equal_weighting"])
def test_the_gating_learns_to_route_each_zone_to_its_expert(
    run: TinyRun, gating: str, tmp_path
) -> None:
    """``learned`` (the committed gating) passes in every zone; frozen to equal weights (the
    ``equal_weighting`` ablation) the same check fails in every zone, on both counts."""
    cfg = run.cfg
    if gating != "learned":
        cfg = cfg.with_overlay(cfg.ablations[gating])
        assert cfg.gating.mode == "equal"
    model = train_stage2(run, cfg, tmp_path)
    failures = specialisation_failures(run, model)
    if gating == "learned":
        assert failures == {zone: [] for zone in ZONES}
    else:
        weights, _ = routing_and_mixture(run, model)
        np.testing.assert_allclose(weights, 1.0 / 3.0, rtol=1e-6)
        assert all(len(failed) == 2 for failed in failures.values()), failures
