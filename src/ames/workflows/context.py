"""One run context: what a stage's workflows share, loaded once per stage.

A training or evaluation stage reads one dataset and one masks folder and writes into one
models folder. :meth:`RunContext.load` reads the run's inputs (``ames.run.load_run_inputs``)
and the masks graph once; the workflows (``expert``, ``ames_model``, ``seeds``, ``ablation``)
take the context instead of the params and paths one by one, and a seed member or an
ablation is the same context under other params (:meth:`RunContext.with_config`) or in
another folder (:meth:`RunContext.in_folder`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ames.config import AmesConfig
from ames.models.graph import GridGraph, load_masks_graph
from ames.paths import DATASET, MASKS, MODELS, STATE
from ames.run import RunInputs, load_run_inputs, run_fingerprint


@dataclass(frozen=True)
class RunContext:
    """The params of a run, where its files are, its inputs and the masks graph."""

    cfg: AmesConfig
    run: RunInputs
    graph: GridGraph
    dataset: Path
    masks_dir: Path
    models_dir: Path  # checkpoints
    state_root: Path  # resumable training state; must lie outside any DVC output

    @classmethod
    def load(
        cls,
        cfg: AmesConfig,
        dataset: str | Path = DATASET,
        masks_dir: str | Path = MASKS,
        models_dir: str | Path = MODELS,
        state_root: str | Path | None = None,
    ) -> RunContext:
        """Read the run's inputs and graph; ``state_root`` defaults to ``models_dir/state``."""
        run = load_run_inputs(cfg, dataset, masks_dir)
        graph = load_masks_graph(masks_dir, run.masks.valid.shape)
        models = Path(models_dir)
        state = models / STATE if state_root is None else Path(state_root)
        return cls(cfg, run, graph, Path(dataset), Path(masks_dir), models, state)

    def with_config(self, cfg: AmesConfig) -> RunContext:
        """The same run under other params (a seed member, an ablation). The inputs are read
        again only when the params they are built from (``features``) differ."""
        if cfg.features == self.cfg.features:
            return dataclasses.replace(self, cfg=cfg)
        return dataclasses.replace(
            self, cfg=cfg, run=load_run_inputs(cfg, self.dataset, self.masks_dir)
        )

    def in_folder(self, models_dir: Path, state_root: Path) -> RunContext:
        """The same run with its checkpoints and training state elsewhere (a seed member)."""
        return dataclasses.replace(self, models_dir=models_dir, state_root=state_root)

    def fingerprint(self, sections: list[str], *files: str | Path) -> str:
        """:func:`ames.run.run_fingerprint` of the params ``sections``, the dataset, the masks
        and ``files``: training resumes only from state of the same fingerprint."""
        return run_fingerprint(self.cfg, sections, self.dataset, self.masks_dir, *files)
