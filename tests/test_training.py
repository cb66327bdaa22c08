"""Tests of the shared training engine (the ames.training package), on tiny models and datasets."""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ames.config import TrainConfig
from ames.errors import UserError
from ames.models.parameters import count_parameters
from ames.training.checkpoints import (
    STATE_FILE,
    CheckpointError,
    load_state_dict_checked,
    save_checkpoint,
)
from ames.training.device import DeviceUnavailableError, select_device
from ames.training.engine import fit
from ames.training.live import LearningCurveError
from ames.training.losses import micro_batches
from ames.training.progress import TrainResult

N_TRAIN, N_VAL, BATCH = 64, 32, 8
TRAIN_BATCHES = N_TRAIN // BATCH
VAL_BATCHES = N_VAL // BATCH


class PairDataset(Dataset):
    """y = sum(x) + noise, served as dict samples like the real WindowDataset."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = self.x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


TRAIN, VAL = PairDataset(N_TRAIN, 1), PairDataset(N_VAL, 2)


def make_model(seed: int = 0, dropout: float = 0.2) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1))


def mse_loss(model: nn.Module, batch: dict[str, torch.Tensor]):
    err = model(batch["x"]) - batch["y"]
    return err.pow(2).mean(), {"mae": err.abs().mean().item()}


def config(**overrides) -> TrainConfig:
    values = {"epochs": 6, "lr": 1e-2, "patience": None, "batch_size": BATCH, "seed": 3}
    return TrainConfig(**{**values, **overrides})


def train(
    root: Path, model: nn.Module, loss=mse_loss, cfg: TrainConfig | None = None, **kwargs
) -> TrainResult:
    return fit(
        model,
        loss,
        kwargs.pop("train_data", TRAIN),
        VAL,
        cfg or config(),
        best_path=root / "best.pt",
        state_dir=root / "state",
        **kwargs,
    )


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class CrashAfter:
    """mse_loss that raises (a simulated kill) on training call number ``n + 1``."""

    def __init__(self, n: int, loss: Callable = mse_loss) -> None:
        self.n, self.loss, self.calls = n, loss, 0

    def __call__(self, model, batch):
        if torch.is_grad_enabled():
            if self.calls == self.n:
                raise RuntimeError("simulated kill")
            self.calls += 1
        return self.loss(model, batch)


class ScriptedVal:
    """Trains on MSE but reports a fixed validation loss per epoch; snapshots weights.

    ``val_losses[e]`` is epoch e's, from epoch 0 (the starting weights) on."""

    def __init__(self, val_losses: list[float], first_epoch: int = 0) -> None:
        self.val_losses, self.first_epoch, self.val_calls = val_losses, first_epoch, 0
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, model, batch):
        if torch.is_grad_enabled():
            return mse_loss(model, batch)
        epoch = self.first_epoch + self.val_calls // VAL_BATCHES
        self.val_calls += 1
        self.snapshots.setdefault(epoch, weights(model))
        value = torch.tensor(self.val_losses[epoch])
        return value, {"scripted": float(value)}


def read_state(root: Path) -> dict:
    return torch.load(root / "state" / STATE_FILE, weights_only=True)


@pytest.fixture
def no_dvc_env(monkeypatch):
    """Run as a plain script would, not inside `dvc repro`/`dvc exp run` or Studio."""
    for name in ("DVC_ROOT", "DVC_EXP_BASELINE_REV", "DVC_EXP_NAME", "DVC_STUDIO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("DVCLIVE_TEST", "DVCLIVE_RESUME"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- resume


def test_resume_after_crash_matches_uninterrupted_run(tmp_path, monkeypatch, no_dvc_env):
    monkeypatch.chdir(tmp_path)  # outside any git repository
    full_model = make_model(0)
    full = train(tmp_path / "full", full_model, live_dir=tmp_path / "full" / "live")

    crash = CrashAfter(3 * TRAIN_BATCHES + 2)  # dies inside epoch 4
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(tmp_path / "cut", make_model(0), crash, live_dir=tmp_path / "cut" / "live")
    assert read_state(tmp_path / "cut")["progress"]["epoch"] == 3

    resumed_model = make_model(99)  # different init: everything must come from the state
    resumed = train(tmp_path / "cut", resumed_model, live_dir=tmp_path / "cut" / "live")

    assert resumed.resumed_from_epoch == 3 and full.resumed_from_epoch == 0
    assert resumed.history == full.history
    assert (resumed.best_epoch, resumed.best_val_loss) == (full.best_epoch, full.best_val_loss)
    assert resumed.epochs_run == full.epochs_run == 6
    assert_bitwise_equal(weights(resumed_model), weights(full_model))
    assert (tmp_path / "cut/best.pt").read_bytes() == (tmp_path / "full/best.pt").read_bytes()
    for curve in ("train/loss.tsv", "val/loss.tsv", "val/mae.tsv"):
        cut = (tmp_path / "cut/live/plots/metrics" / curve).read_text()
        assert cut == (tmp_path / "full/live/plots/metrics" / curve).read_text()
        assert len(cut.splitlines()) == 1 + 6 + curve.startswith("val/")  # val: epoch 0 too
    assert not (tmp_path / "cut/state" / STATE_FILE).exists()


def test_resume_keeps_early_stopping_state(tmp_path):
    # best at epoch 2, then 3 bad epochs: patience 3 stops after epoch 5, before the 2.0
    script = [9.0, 4.0, 3.0, 3.5, 3.25, 3.75, 2.0, 1.0, 1.0]
    cfg = config(epochs=8, patience=3)
    full = train(tmp_path / "full", make_model(0), ScriptedVal(script), cfg)

    crash = CrashAfter(4 * TRAIN_BATCHES + 1, ScriptedVal(script))  # dies inside epoch 5
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(tmp_path / "cut", make_model(0), crash, cfg)
    assert read_state(tmp_path / "cut")["progress"]["bad_epochs"] == 2
    resumed = train(tmp_path / "cut", make_model(0), ScriptedVal(script, first_epoch=5), cfg)

    for result in (full, resumed):
        assert result.stopped_early and result.epochs_run == 5
        assert (result.best_epoch, result.best_val_loss) == (2, 3.0)
    assert resumed.history == full.history


@pytest.mark.parametrize("change", ["fingerprint", "config"])
def test_foreign_state_starts_fresh(tmp_path, caplog, change):
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(tmp_path / "a", make_model(0), CrashAfter(2 * TRAIN_BATCHES), fingerprint="data-v1")
    assert (tmp_path / "a/state" / STATE_FILE).exists()

    kwargs = {"fingerprint": "data-v2"} if change == "fingerprint" else {"cfg": config(lr=5e-3)}
    kwargs.setdefault("fingerprint", "data-v1")
    with caplog.at_level(logging.INFO, logger="ames.training"):
        again = train(tmp_path / "a", make_model(0), **kwargs)
    fresh = train(tmp_path / "b", make_model(0), **kwargs)

    assert again.resumed_from_epoch == 0
    assert again.history == fresh.history
    assert "starting fresh" in caplog.text


def test_resume_right_after_epoch_0_matches_uninterrupted_run(tmp_path, monkeypatch, no_dvc_env):
    monkeypatch.chdir(tmp_path)  # outside any git repository
    full_model = make_model(0)
    full = train(tmp_path / "full", full_model, live_dir=tmp_path / "full" / "live")

    with pytest.raises(RuntimeError, match="simulated kill"):  # dies in epoch 1's first step
        train(tmp_path / "cut", make_model(0), CrashAfter(0), live_dir=tmp_path / "cut" / "live")
    progress = read_state(tmp_path / "cut")["progress"]
    assert progress["epoch"] == 0 and [row["epoch"] for row in progress["history"]] == [0]

    resumed_model = make_model(99)  # different init: the starting weights come from the state
    resumed = train(tmp_path / "cut", resumed_model, live_dir=tmp_path / "cut" / "live")

    assert resumed.history == full.history  # epoch 0 is not validated a second time
    assert [row["epoch"] for row in full.history] == list(range(7))
    assert (resumed.best_epoch, resumed.best_val_loss) == (full.best_epoch, full.best_val_loss)
    assert_bitwise_equal(weights(resumed_model), weights(full_model))
    assert (tmp_path / "cut/best.pt").read_bytes() == (tmp_path / "full/best.pt").read_bytes()
    for curve in ("train/loss.tsv", "val/loss.tsv"):
        cut = (tmp_path / "cut/live/plots/metrics" / curve).read_text()
        assert cut == (tmp_path / "full/live/plots/metrics" / curve).read_text()


def test_state_is_removed_after_success_unless_kept(tmp_path):
    first = train(tmp_path, make_model(0), keep_state=True)
    assert (tmp_path / "state" / STATE_FILE).exists()

    never = CrashAfter(0)  # any training step would raise
    again = train(tmp_path, make_model(5), never)
    assert never.calls == 0
    assert again.resumed_from_epoch == 6 and again.history == first.history
    assert not (tmp_path / "state" / STATE_FILE).exists()


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_same_metrics_and_weights(tmp_path):
    model_a, model_b, model_c = make_model(0), make_model(0), make_model(0)
    a = train(tmp_path / "a", model_a)
    b = train(tmp_path / "b", model_b)
    c = train(tmp_path / "c", model_c, cfg=config(seed=4))

    assert a.history == b.history
    assert_bitwise_equal(weights(model_a), weights(model_b))
    assert c.history != a.history  # the seed drives shuffling and dropout


class CountingReads(Dataset):
    """``TRAIN``, recording which samples each epoch reads."""

    def __init__(self) -> None:
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(TRAIN)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        self.reads.append(i)
        return TRAIN[i]


def test_max_epoch_windows_draws_that_many_distinct_windows_anew_each_epoch(tmp_path):
    data, cap = CountingReads(), 20
    train(tmp_path, make_model(0), cfg=config(epochs=3, max_epoch_windows=cap), train_data=data)

    epochs = [data.reads[k * cap : (k + 1) * cap] for k in range(3)]
    assert len(data.reads) == 3 * cap
    assert all(len(set(e)) == cap for e in epochs)  # without replacement within an epoch
    assert epochs[0] != epochs[1] != epochs[2]  # a new draw each epoch
    assert len(set(data.reads)) > cap


@pytest.mark.parametrize("cap", [N_TRAIN, 10 * N_TRAIN])
def test_a_cap_the_training_set_does_not_reach_changes_nothing(tmp_path, cap):
    model_a, model_b = make_model(0), make_model(0)
    a = train(tmp_path / "a", model_a)
    b = train(tmp_path / "b", model_b, cfg=config(max_epoch_windows=cap))

    assert a.history == b.history
    assert_bitwise_equal(weights(model_a), weights(model_b))


def test_amp_is_ignored_on_cpu(tmp_path):
    plain, amp = make_model(0), make_model(0)
    train(tmp_path / "plain", plain, cfg=config(epochs=2, device="cpu"))
    train(tmp_path / "amp", amp, cfg=config(epochs=2, device="cpu", amp=True))
    assert_bitwise_equal(weights(plain), weights(amp))


# --------------------------------------------------------------------------- stopping, best


@pytest.mark.parametrize(
    ("script", "patience", "min_delta", "stop_epoch", "best_epoch"),
    [
        ([9.0, 5.0, 4.0, 3.0, 3.5, 3.25, 3.75, 1.0, 1.0], 3, 0.0, 6, 3),
        ([9.0, 5.0, 4.75, 4.5, 4.25, 1.0, 1.0, 1.0, 1.0], 2, 0.5, 3, 1),
    ],
)
def test_early_stopping(tmp_path, script, patience, min_delta, stop_epoch, best_epoch):
    cfg = config(epochs=8, patience=patience, min_delta=min_delta)
    result = train(tmp_path, make_model(0), ScriptedVal(script), cfg)
    assert result.stopped_early
    assert result.epochs_run == len(result.history) - 1 == stop_epoch  # + epoch 0
    assert result.best_epoch == best_epoch
    assert result.best_val_loss == script[best_epoch]


def test_no_early_stop_when_patience_runs_out_on_the_last_epoch(tmp_path):
    script = [9.0, 1.0, 2.0, 3.0]
    result = train(tmp_path, make_model(0), ScriptedVal(script), config(epochs=3, patience=2))
    assert result.epochs_run == 3 and not result.stopped_early


def test_best_checkpoint_is_the_argmin_and_is_reloaded(tmp_path, caplog):
    scripted = ScriptedVal([9.0, 3.0, 2.0, 2.5, 2.75])
    model = make_model(0)
    with caplog.at_level(logging.INFO, logger="ames.training"):
        result = train(tmp_path, model, scripted, config(epochs=4), desc="expert1")

    val = [row["val/loss"] for row in result.history]
    assert result.best_epoch == val.index(min(val)) == 2
    assert result.best_components == {"scripted": 2.0}
    assert_bitwise_equal(weights(model), scripted.snapshots[2])
    assert not torch.equal(weights(model)["3.weight"], scripted.snapshots[4]["3.weight"])

    reloaded = make_model(7)
    meta = load_state_dict_checked(reloaded, tmp_path / "best.pt")
    assert_bitwise_equal(weights(reloaded), scripted.snapshots[2])
    assert meta == {"epoch": 2, "val_loss": 2.0, "components": {"scripted": 2.0}}
    assert "expert1 epoch 4/4: train" in caplog.text


@pytest.mark.parametrize(
    ("script", "min_delta"),
    [([1.0, 2.0, 1.5, 3.0], 0.0), ([1.0, 0.9, 0.8, 0.95], 0.25)],
    ids=["worse", "within-min-delta"],
)
def test_starting_weights_are_kept_when_no_epoch_beats_them(tmp_path, caplog, script, min_delta):
    model = make_model(0)
    start = weights(model)
    scripted = ScriptedVal(script)
    with caplog.at_level(logging.INFO, logger="ames.training"):
        result = train(tmp_path, model, scripted, config(epochs=3, min_delta=min_delta))

    assert (result.best_epoch, result.best_val_loss, result.epochs_run) == (0, 1.0, 3)
    assert result.best_components == {"scripted": 1.0}
    assert result.history[0] == {"epoch": 0, "val/loss": 1.0, "val/scripted": 1.0}
    assert all("train/loss" in row for row in result.history[1:])
    assert_bitwise_equal(scripted.snapshots[0], start)
    assert_bitwise_equal(weights(model), start)
    assert not torch.equal(scripted.snapshots[3]["3.weight"], start["3.weight"])  # it trained
    meta = load_state_dict_checked(make_model(7), tmp_path / "best.pt")
    assert meta == {"epoch": 0, "val_loss": 1.0, "components": {"scripted": 1.0}}
    assert "epoch 0/3: starting weights, val 1 (best)" in caplog.text


@pytest.mark.parametrize(
    ("script", "patience", "stop_epoch", "best_epoch"),
    [
        ([1.0, 2.0, 0.5, 0.5], 1, 1, 0),  # one bad training epoch, not epoch 0, spends it
        ([1.0, 2.0, 0.5, 3.0, 4.0, 0.1, 0.1], 2, 4, 2),
    ],
)
def test_epoch_0_spends_no_patience_and_no_epoch(
    tmp_path, script, patience, stop_epoch, best_epoch
):
    epochs = len(script) - 1
    cfg = config(epochs=epochs, patience=patience)
    result = train(tmp_path, make_model(0), ScriptedVal(script), cfg)
    assert result.stopped_early and result.epochs_run == stop_epoch
    assert [row["epoch"] for row in result.history] == list(range(stop_epoch + 1))
    assert (result.best_epoch, result.best_val_loss) == (best_epoch, script[best_epoch])

    full = train(tmp_path / "all", make_model(0), ScriptedVal(script), config(epochs=epochs))
    assert full.epochs_run == epochs and len(full.history) == epochs + 1


def test_validation_loss_is_weighted_by_batch_size(tmp_path):
    cfg = config(epochs=1, batch_size=24)  # val batches of 24 and 8 samples
    model = make_model(0, dropout=0.0)
    result = train(tmp_path, model, cfg=cfg)
    with torch.no_grad():
        expected = (model(VAL.x) - VAL.y).pow(2).mean().item()
    best = result.history[result.best_epoch]  # the model holds the best epoch's weights
    assert math.isclose(best["val/loss"], expected, rel_tol=1e-6)


# --------------------------------------------------------------------------- optimisation


def test_micro_batches_give_the_whole_batch_gradients(tmp_path):
    """A batch cut into micro-batches of 3 samples trains to the same weights and curves."""
    runs = []
    for max_cells in (None, 3):
        model = make_model(0, dropout=0.0)
        result = train(tmp_path / str(max_cells), model, cfg=config(max_batch_cells=max_cells))
        runs.append((weights(model), result.history))
    (whole, whole_curve), (micro, micro_curve) = runs
    for key in whole:
        torch.testing.assert_close(micro[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)
    for a, b in zip(whole_curve, micro_curve, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-7), key


def test_micro_batches_hold_at_most_max_cells_samples_times_grid_cells():
    batch = {"x": torch.zeros(8, 12, 9, 5, 6), "y": torch.zeros(8, 4, 5, 6), "tag": "t"}
    pieces = micro_batches(batch, 95)  # 30 cells per sample: 3 samples per piece
    assert [len(p["x"]) for p in pieces] == [3, 3, 2] and all(p["tag"] == "t" for p in pieces)
    assert torch.equal(torch.cat([p["y"] for p in pieces]), batch["y"])
    assert micro_batches(batch, None) == [batch] and micro_batches(batch, 240) == [batch]
    assert [len(p["x"]) for p in micro_batches(batch, 1)] == [1] * 8  # never below one sample


def test_gradient_clipping_limits_the_global_norm(tmp_path):
    def big_loss(model, batch):
        loss, parts = mse_loss(model, batch)
        return 1e3 * loss, parts

    model = make_model(0, dropout=0.0)
    big_loss(model, {"x": TRAIN.x, "y": TRAIN.y})[0].backward()
    grad_norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    assert grad_norm > 10

    def first_moment_norm(clip: float | None) -> float:
        root = tmp_path / str(clip)
        cfg = config(epochs=1, batch_size=N_TRAIN, grad_clip=clip)
        train(root, make_model(0, dropout=0.0), big_loss, cfg, keep_state=True)
        moments = read_state(root)["optimizer"]["state"].values()
        return torch.cat([m["exp_avg"].flatten() for m in moments]).norm().item()

    # after one AdamW step exp_avg = (1 - beta1) * gradient actually used
    assert math.isclose(first_moment_norm(0.5), 0.1 * 0.5, rel_tol=1e-4)
    assert math.isclose(first_moment_norm(None), 0.1 * grad_norm, rel_tol=1e-4)


class FrozenBody(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5))
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_trainable_subset_leaves_other_parameters_unchanged(tmp_path):
    torch.manual_seed(0)
    model = FrozenBody()
    body_before, head_before = weights(model.body), weights(model.head)

    train(tmp_path, model, trainable=model.head.parameters(), cfg=config(epochs=2))

    assert_bitwise_equal(weights(model.body), body_before)  # batch-norm statistics included
    assert not torch.equal(weights(model.head)["weight"], head_before["weight"])
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_trainable_must_belong_to_the_model(tmp_path):
    with pytest.raises(ValueError, match="not parameters of the model"):
        train(tmp_path, make_model(0), trainable=[nn.Parameter(torch.zeros(1))])


def test_non_finite_losses_fail_clearly(tmp_path):
    def nan_loss(model, batch):
        return mse_loss(model, batch)[0] * float("nan"), {}

    def nan_training_loss(model, batch):
        return nan_loss(model, batch) if torch.is_grad_enabled() else mse_loss(model, batch)

    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        train(tmp_path / "train", make_model(0), nan_training_loss)
    with pytest.raises(
        FloatingPointError, match=r"validation loss at epoch 0 \(the starting weights\)"
    ):
        train(tmp_path / "val", make_model(0), nan_loss)


def test_a_loss_mask_without_cells_is_refused_before_training(tmp_path):
    empty = torch.zeros(3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="expert1: the loss mask has no cells"):
        train(tmp_path, make_model(0), loss_mask=empty, desc="expert1")
    assert not (tmp_path / "best.pt").exists()
    one_cell = empty.clone()
    one_cell[1, 2] = True
    result = train(tmp_path, make_model(0), cfg=config(epochs=1), loss_mask=one_cell)
    assert result.epochs_run == 1


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_load_with_weights_only(tmp_path):
    model = make_model(0)
    extra = {"params_hash": "abc", "zones": ["high", "low"], "alpha": torch.tensor(0.3)}
    train(tmp_path, model, cfg=config(epochs=2), extra_state=extra, keep_state=True)

    best = torch.load(tmp_path / "best.pt", weights_only=True)
    state = torch.load(tmp_path / "state" / STATE_FILE, weights_only=True)
    assert set(best) == {"format", "model", "meta"}
    assert best["meta"]["extra"]["zones"] == ["high", "low"]
    assert {"model", "optimizer", "scaler", "progress", "best_model"} <= set(state)

    save_checkpoint(tmp_path / "copy.pt", model, {"note": "copy"})
    fresh = make_model(1)
    assert load_state_dict_checked(fresh, tmp_path / "copy.pt") == {"note": "copy"}
    assert_bitwise_equal(weights(fresh), weights(model))


def test_unsafe_metadata_is_rejected_before_training(tmp_path):
    with pytest.raises(TypeError, match="extra_state.path"):
        train(tmp_path, make_model(0), extra_state={"path": Path("x")})
    with pytest.raises(TypeError, match="weights-only"):
        save_checkpoint(tmp_path / "x.pt", make_model(0), {"obj": object()})


def test_load_state_dict_checked_explains_missing_and_incompatible_files(tmp_path):
    missing = tmp_path / "expert1_best.pt"
    with pytest.raises(FileNotFoundError, match=r"expert1_best\.pt.*dvc repro expert@1"):
        load_state_dict_checked(make_model(0), missing, stage="expert@1")

    save_checkpoint(missing, nn.Linear(3, 3), {})
    with pytest.raises(CheckpointError, match=r"expert1_best\.pt: does not fit Sequential"):
        load_state_dict_checked(make_model(0), missing, stage="expert@1")

    missing.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable weights-only checkpoint"):
        load_state_dict_checked(make_model(0), missing)


# --------------------------------------------------------------------------- DVCLive


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout


def _make_repo(root: Path, commit: bool) -> Path:
    from dvc.repo import Repo

    root.mkdir()
    _git(root, "init", "-q")
    Repo.init(str(root)).close()
    if commit:
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "init")
    return root


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _assert_curves_only(repo: Path, live: Path, epochs: int) -> None:
    for name in ("train/loss", "val/loss", "train/mae", "val/mae"):
        rows = (live / "plots/metrics" / f"{name}.tsv").read_text().splitlines()
        first = 0 if name.startswith("val/") else 1  # epoch 0 (starting weights): val only
        assert [row.split("\t")[0] for row in rows] == ["step", *map(str, range(first, epochs + 1))]
    assert (live / "metrics.json").exists()
    assert not list(repo.rglob("dvc.yaml"))


@needs_git
def test_dvclive_in_a_committed_repo_writes_curves_but_no_dvc_yaml_or_experiment(
    tmp_path, monkeypatch, no_dvc_env
):
    repo = _make_repo(tmp_path / "repo", commit=True)
    monkeypatch.chdir(repo)
    train(repo, make_model(0), cfg=config(epochs=2), live_dir=repo / "metrics/live/expert1")

    _assert_curves_only(repo, repo / "metrics/live/expert1", epochs=2)
    assert _git(repo, "for-each-ref", "refs/exps") == ""
    assert _git(repo, "diff", "--cached", "--name-only") == ""  # nothing staged


@needs_git
def test_dvclive_in_a_repo_without_commits_is_one_clear_error(tmp_path, monkeypatch, no_dvc_env):
    repo = _make_repo(tmp_path / "repo", commit=False)
    monkeypatch.chdir(repo)
    with pytest.raises(LearningCurveError, match="no commit yet.*git commit") as err:
        train(repo, make_model(0), cfg=config(epochs=2), live_dir=repo / "live")
    assert isinstance(err.value, UserError)  # printed as one line by ames.cli.run_stage
    assert not (repo / "live" / "metrics.json").exists()


def test_live_flag_disables_learning_curves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(tmp_path, make_model(0), cfg=config(epochs=1, live=False), live_dir=tmp_path / "live")
    assert not (tmp_path / "live").exists()


# --------------------------------------------------------------------------- small API


def test_train_config_from_dict():
    cfg = TrainConfig.from_dict(
        {"epochs": 5, "lr": "1e-3", "patience": None, "batch_size": 8, "seed": 1}
    )
    assert cfg.lr == 1e-3 and cfg.weight_decay == 1e-4 and cfg.grad_clip == 1.0
    valid = {"epochs": 5, "lr": 1e-3, "patience": 3, "batch_size": 8, "seed": 1}
    with pytest.raises(ValueError, match="'learning_rate'.*valid: epochs"):
        TrainConfig.from_dict({"epochs": 5, "learning_rate": 1e-3})
    with pytest.raises(ValueError, match="'pateince' \\(did you mean 'patience'\\?\\)"):
        TrainConfig.from_dict({"pateince": 3})
    with pytest.raises(ValueError, match="training.lr: missing key"):
        TrainConfig.from_dict({"epochs": 5, "patience": 3, "batch_size": 8, "seed": 1})
    with pytest.raises(ValueError, match="training: invalid value\\(s\\) epochs=0"):
        TrainConfig.from_dict({**valid, "epochs": 0})
    with pytest.raises(ValueError, match="training.batch_size: expected an integer, got True"):
        TrainConfig.from_dict({**valid, "batch_size": True})


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="'tpu' is not supported"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
            select_device("cuda")


def test_count_parameters():
    model = make_model(0)
    assert count_parameters(model) == 4 * 16 + 16 + 16 + 1
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 16 + 1


class Unreadable(PairDataset):
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        raise AssertionError("a run of no training epoch read a training window")


def test_a_run_of_no_training_epoch_never_reads_the_training_windows(tmp_path: Path):
    """What lets stage 2 of a seed member or an ablation skip the held-out expert
    forecasts (``stacking.HeldOutOnDemand``) when the main chain kept epoch 0."""
    result = train(tmp_path, make_model(), cfg=config(epochs=0), train_data=Unreadable(N_TRAIN, 1))
    assert result.best_epoch == 0 and result.epochs_run == 0
