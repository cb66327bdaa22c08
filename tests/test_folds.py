"""Epochs decided by the folds (ames.training.folds): the rule, and lockstep training of fold
copies on tiny problems where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ames.config import TrainConfig
from ames.training.folds import FoldRun, choose_epoch, cross_validate_epochs, held_out_stride
from ames.workflows.stage2_folds import (
    choose_expert_by_lead,
    mixture_against_experts,
    published_sums,
)


class Pairs(Dataset):
    """x ~ N(0, 1); y = signal * sum(x) + noise."""

    def __init__(self, n: int, seed: int, signal: float) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = signal * self.x.sum(1, keepdim=True) + torch.randn(n, 1, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


def mse_loss(model: nn.Module, batch: dict[str, torch.Tensor]):
    loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
    return loss, {"mse": loss.item()}


def zero_start() -> nn.Module:
    """A linear model starting as the zero forecast (the 'climatology' of this toy)."""
    model = nn.Linear(4, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    return model


def fold_runs(signal: float, folds: int = 4) -> list[FoldRun]:
    return [
        FoldRun(zero_start(), mse_loss, Pairs(96, 10 + k, signal), Pairs(48, 100 + k, signal))
        for k in range(folds)
    ]


CFG = TrainConfig(epochs=6, lr=0.05, patience=2, batch_size=16, seed=0, grad_clip=None)


def test_choose_epoch_keeps_a_confirmed_gain_only():
    windows = np.array([10, 10, 10, 10])
    steady = np.array([[1.0, 0.8, 0.7], [1.0, 0.82, 0.71], [1.0, 0.79, 0.69], [1.0, 0.81, 0.7]])
    choice = choose_epoch(steady, windows, skill_margin_se=1.0)
    assert choice.kept == 2 and choice.lowest == 2
    assert choice.gain == pytest.approx(0.3, abs=0.01)
    # the same mean gain, but two folds lose: not confirmed, the starting weights stay
    mixed = np.array([[1.0, 1.2], [1.0, 1.2], [1.0, 0.6], [1.0, 0.6]])
    choice = choose_epoch(mixed, windows, skill_margin_se=1.0)
    assert choice.lowest == 1 and choice.kept == 0
    assert choose_epoch(mixed, windows, skill_margin_se=0.0).kept == 1
    # folds weigh by their held-out windows
    assert choose_epoch(mixed, np.array([30, 30, 1, 1]), 0.0).kept == 0


def test_the_folds_keep_training_where_there_is_signal():
    choice = cross_validate_epochs(fold_runs(signal=1.0), CFG, 1.0, desc="signal")
    assert choice.kept >= 1
    assert choice.pooled[choice.kept] < 0.6 * choice.pooled[0]
    assert len(choice.by_fold) == 4 and all(len(c) == len(choice.pooled) for c in choice.by_fold)


def test_the_folds_keep_the_starting_weights_on_noise():
    """With nothing to learn, whatever a fold copy fits is noise: no epoch beats the zero
    forecast by a confirmed margin, so epoch 0 stays (and the folds stop after patience)."""
    choice = cross_validate_epochs(fold_runs(signal=0.0), CFG, 1.0, desc="noise")
    assert choice.kept == 0
    assert len(choice.pooled) <= CFG.epochs + 1


def test_after_epoch_sees_every_fold_and_epoch():
    seen = []
    runs = fold_runs(signal=1.0, folds=2)
    cfg = TrainConfig(epochs=2, lr=0.05, patience=None, batch_size=16, seed=0)
    cross_validate_epochs(runs, cfg, 1.0, desc="t", after_epoch=lambda k, e, m: seen.append((k, e)))
    assert seen == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]


@pytest.mark.parametrize(
    ("sizes", "cap", "stride"),
    [([48] * 4, None, 1), ([48] * 4, 192, 1), ([48] * 4, 191, 2), ([224] * 5, 400, 3)],
)
def test_held_out_stride_keeps_the_folds_total_within_the_cap(sizes, cap, stride):
    assert held_out_stride(sizes, cap) == stride
    assert cap is None or sum(len(range(0, n, stride)) for n in sizes) <= cap


def test_a_cap_on_the_windows_per_epoch_thins_the_held_out_windows_and_still_finds_signal():
    """4 folds of 96 fitting and 48 held-out windows, 40 windows per epoch: each epoch trains
    on 40 windows per fold and the folds score every 5th held-out window (10 per fold)."""
    cfg = TrainConfig(
        epochs=6, lr=0.05, patience=2, batch_size=16, seed=0, grad_clip=None, max_epoch_windows=40
    )
    choice = cross_validate_epochs(fold_runs(signal=1.0), cfg, 1.0, desc="capped")
    assert choice.held_out_stride == 5 and choice.fold_windows == [10] * 4
    assert choice.report()["held_out_stride"] == 5
    assert choice.kept >= 1 and choice.pooled[choice.kept] < 0.6 * choice.pooled[0]


def _sums(forecast: np.ndarray, obs: np.ndarray, folds: int = 5) -> np.ndarray:
    """``[K, 4, H]`` fold sums of ``forecast``/``obs`` ``[S, H, cells]`` (climatology 0)."""
    out = []
    for b in np.array_split(np.arange(len(obs)), folds):
        f, o = forecast[b], obs[b]
        n = np.full(obs.shape[1], f[:, 0].size, dtype=float)
        out.append([(f * o).sum((0, 2)), (f * f).sum((0, 2)), (o * o).sum((0, 2)), n])
    return np.array(out)


def _good_poor_and_their_mean(seed: int, mixture_good_at: slice = slice(0, 0)):
    """Truth, and the out-of-fold sums of a poor expert, a good one and their mean (the
    mixture; as good as the good one at the leads ``mixture_good_at``) as experts 1-3."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(100, 3, 20))
    obs = signal + rng.normal(size=signal.shape)
    good, poor = signal, 0.2 * signal + rng.normal(size=signal.shape)
    mixture = (good + poor) / 2
    mixture[:, mixture_good_at] = good[:, mixture_good_at]
    experts = np.stack([_sums(poor, obs), _sums(good, obs), _sums(mixture, obs)], axis=1)
    return obs, mixture, experts


def test_the_folds_say_where_an_expert_beats_the_mixture():
    obs, mixture, experts = _good_poor_and_their_mean(0)
    report = mixture_against_experts(_sums(mixture, obs), experts, skill_margin_se=1.0)
    assert all(report["expert2"]["beats_mixture_by_lead"])  # the good one, at every lead
    assert not any(report["expert1"]["beats_mixture_by_lead"])
    assert not any(report["expert3"]["beats_mixture_by_lead"])  # the mixture itself
    np.testing.assert_allclose(
        report["expert3"]["cv_mse_ratio_by_lead"], report["mixture_cv_mse_ratio_by_lead"]
    )
    assert max(report["expert2"]["cv_mse_ratio_by_lead"]) < 0.6
    # a copy of the mixture up to float rounding does not "beat" it
    nudged = np.stack([_sums(mixture * (1 + 1e-7), obs)] * 3, axis=1)
    report = mixture_against_experts(_sums(mixture, obs), nudged, skill_margin_se=1.0)
    assert not any(report["expert1"]["beats_mixture_by_lead"])


def test_a_lead_goes_to_the_expert_that_beats_the_mixture_and_the_blend_reads_its_sums():
    obs, mixture, experts = _good_poor_and_their_mean(1, mixture_good_at=slice(0, 2))
    report = mixture_against_experts(_sums(mixture, obs), experts, skill_margin_se=1.0)
    chosen = choose_expert_by_lead(report, 3)
    assert chosen == [-1, -1, 1]
    sums = published_sums(_sums(mixture, obs), experts, chosen)
    np.testing.assert_array_equal(sums[:, :, 2], experts[:, 1, :, 2])
    np.testing.assert_array_equal(sums[:, :, :2], _sums(mixture, obs)[:, :, :2])
