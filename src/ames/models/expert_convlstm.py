"""Expert 2, ConvLSTM (low zone): stacked ConvLSTM layers → 1×1 head.

Paper-profile parameter count (W = 60, C = 9 with 5 static, H = 12; independent of the
grid): 203,404 (SPEC ≈ 180 K, +13 %).
"""

from __future__ import annotations

from torch import Tensor, nn

from ames.config import ConvLstmConfig
from ames.models.layers import ConvLstmLayer, patch_months, split_static
from ames.models.linear_path import (
    forecasts_linear_path_only,
    linear_path,
    start_as_linear_path,
)
from ames.models.tiling import needs_tiles, tile_side, tiled


class ConvLstmExpert(nn.Module):
    """Expert 2, ConvLSTM (low zone): stacked ConvLSTM layers → 1×1 conv head to H channels.

    Paper profile: 2 layers, hidden 64, 3×3 kernels, as in SPEC §4.2. A textbook cell
    (one dense 3×3 conv on ``[input, hidden]`` per layer) has ≈ 464 K parameters; with the
    hidden-to-hidden conv depthwise-separable (``recurrent_conv: separable``, depthwise 3×3
    then 1×1 to the four gates) the expert has ≈ 203 K, inside the ±30 % band of the
    paper's ≈ 180 K. The spatial receptive field per step is unchanged (3×3 on the input
    and on the state). ``recurrent_conv: full`` with ``hidden: [40, 40]`` (≈ 187 K) is the
    textbook alternative.

    A grid of more than ``tile_cells`` cells runs the ConvLSTM in square tiles of at most
    that many cells with a halo of
    :attr:`receptive_radius` cells (``ames.models.tiling``): the same forecasts, with memory
    bounded by the tile. The linear path reads the whole grid (its smoothing reaches far)
    and holds no activations worth tiling.
    """

    def __init__(
        self, cfg: ConvLstmConfig, n_features: int, n_static: int, horizon: int, window: int
    ) -> None:
        super().__init__()
        self.linear = linear_path(cfg.linear_path, window, horizon)
        self.patch = cfg.temporal_patch
        self.tile_cells = cfg.tile_cells
        # the output reads the inputs within one kernel reach per recurrent step and per
        # layer beyond the first (R_l(s) = max(R_l-1(s), R_l(s-1)) + reach)
        steps = window // cfg.temporal_patch
        self.receptive_radius = cfg.kernel_size // 2 * (steps + len(cfg.hidden) - 1)
        self.n_static = n_static
        widths = [(n_features - n_static) * cfg.temporal_patch, *cfg.hidden]
        self.layers = nn.ModuleList(
            ConvLstmLayer(
                w_in, w_out, cfg.kernel_size, cfg.recurrent_conv, n_static if i == 0 else 0
            )
            for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Conv2d(widths[-1], horizon, 1)
        start_as_linear_path(self.head, self.linear)

    def forward(self, x: Tensor) -> Tensor:
        if forecasts_linear_path_only(self, self.head):
            return self.linear(x)
        if needs_tiles(x.shape[-2:], self.tile_cells):
            out = tiled(self.network, x, tile_side(self.tile_cells), self.receptive_radius)
        else:
            out = self.network(x)
        return out if self.linear is None else out + self.linear(x)

    def network(self, x: Tensor) -> Tensor:
        """The ConvLSTM and its head, ``[B, W, C, lat, lon]`` → ``[B, H, lat, lon]``."""
        dynamic, static = split_static(x, self.n_static)
        sequence = patch_months(dynamic, self.patch)
        for i, layer in enumerate(self.layers):
            sequence = layer(sequence, static if i == 0 else None)
        return self.head(self.dropout(sequence[:, -1]))
