"""Expert 2, ConvLSTM (low zone): stacked ConvLSTM layers → 1×1 head.

Paper-profile parameter count (W = 60, C = 9 with 5 static, H = 12; independent of the
grid): 203,404 (SPEC ≈ 180 K, +13 %).
"""

from __future__ import annotations

from torch import Tensor, nn

from ames.config import ConvLstmConfig
from ames.models.layers import ConvLstmLayer, patch_months, split_static
from ames.models.linear_path import linear_path, start_as_linear_path


class ConvLstmExpert(nn.Module):
    """Expert 2, ConvLSTM (low zone): stacked ConvLSTM layers → 1×1 conv head to H channels.

    Paper profile: 2 layers, hidden 64, 3×3 kernels, as in SPEC §4.2. A textbook cell
    (one dense 3×3 conv on ``[input, hidden]`` per layer) has ≈ 464 K parameters; with the
    hidden-to-hidden conv depthwise-separable (``recurrent_conv: separable``, depthwise 3×3
    then 1×1 to the four gates) the expert has ≈ 203 K, inside the ±30 % band of the
    paper's ≈ 180 K. The spatial receptive field per step is unchanged (3×3 on the input
    and on the state). ``recurrent_conv: full`` with ``hidden: [40, 40]`` (≈ 187 K) is the
    textbook alternative.
    """

    def __init__(
        self, cfg: ConvLstmConfig, n_features: int, n_static: int, horizon: int, window: int
    ) -> None:
        super().__init__()
        self.linear = linear_path(cfg.linear_path, window, horizon)
        self.patch = cfg.temporal_patch
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
        dynamic, static = split_static(x, self.n_static)
        sequence = patch_months(dynamic, self.patch)
        for i, layer in enumerate(self.layers):
            sequence = layer(sequence, static if i == 0 else None)
        out = self.head(self.dropout(sequence[:, -1]))
        return out if self.linear is None else out + self.linear(x)
