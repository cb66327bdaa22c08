"""Experts, the grid graph and the masked MSE, on small grids (fast)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from graph_fixtures import synthetic_grid_graph
from torch_geometric.nn import GATConv

from ames.config import DEFAULT_ARCHITECTURES, ConfigError, Reader, read_expert_model
from ames.models.experts import EXPERTS, build_expert
from ames.models.graph import GridGraph, load_grid_graph
from ames.models.layers import GraphAttention, PygGraphAttention
from ames.models.losses import masked_mse
from ames.models.parameters import count_parameters
from ames.windows import N_CHANNELS as N_FEATURES
from ames.windows import N_CONTEXT

HORIZON = 12

# SPEC §4.2 paper profile (W = 60) and its target parameter counts
PAPER_WINDOW = 60
PAPER = {
    1: {
        "lstm_hidden": 64,
        "lstm_layers": 2,
        "gat_hidden": 64,
        "gat_layers": 3,
        "gat_heads": 4,
        "attention_heads": 4,
        "temporal_patch": 1,
        "dropout": 0.1,
        "gat_impl": "pyg",
    },
    2: {
        "hidden": [64, 64],
        "kernel_size": 3,
        "recurrent_conv": "separable",
        "temporal_patch": 1,
        "dropout": 0.1,
    },
    3: {
        "recent_months": None,
        "encoder_hidden": 144,
        "conv_hidden": 32,
        "conv_layers": 2,
        "kernel_size": 3,
        "gat_hidden": 32,
        "gat_heads": 4,
        "dropout": 0.1,
        "gat_impl": "pyg",
    },
}
PAPER_TARGET = {1: 64_000, 2: 180_000, 3: 90_000}

# the CPU default profile (W = 12)
DEFAULT_WINDOW = 12
DEFAULT = {
    1: {**PAPER[1], "lstm_hidden": 16, "lstm_layers": 1, "gat_hidden": 16, "temporal_patch": 6},
    2: {**PAPER[2], "hidden": [16, 16], "temporal_patch": 4},
    3: {**PAPER[3], "encoder_hidden": 32, "gat_hidden": 16},
}
for _cfg in DEFAULT.values():
    _cfg["dropout"] = 0.0

# (expert, gat_impl): experts 1 and 3 with both graph-attention layers, expert 2 has none
CASES = [(1, "pyg"), (1, "dense"), (2, None), (3, "pyg"), (3, "dense")]


def with_impl(cfg: dict, impl: str | None) -> dict:
    return cfg if impl is None else {**cfg, "gat_impl": impl}


def small_valid() -> np.ndarray:
    valid = np.ones((6, 7), dtype=bool)
    valid[0, :3] = False
    valid[4, 5] = False
    valid[5, 6] = False
    return valid


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core machine OpenMP
    barriers between two threads can make these tests ~100× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def graph() -> GridGraph:
    return synthetic_grid_graph(small_valid(), n_neighbors=6, seed=1)


def make_expert(index: int, graph: GridGraph, cfg: dict | None = None, window: int = 12):
    """The expert of section ``expert<index>`` from its model keys, read as params are."""
    architecture = DEFAULT_ARCHITECTURES.get(f"expert{index}", "none")
    model = DEFAULT[index] if cfg is None else cfg
    typed = read_expert_model(Reader(), architecture, model, f"expert{index}.model", window)
    torch.manual_seed(index)
    return build_expert(
        architecture,
        typed,
        n_features=N_FEATURES,
        window=window,
        horizon=HORIZON,
        graph=graph,
        section=f"expert{index}",
    )


def inputs(batch: int, window: int, grid: tuple[int, int], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, window, N_FEATURES, *grid, generator=gen)
    x[:, :, -N_CONTEXT:] = x[:, -1:, -N_CONTEXT:]  # context is constant over the window
    return x


# ------------------------------------------------------------------------------------ graph


def test_gather_scatter_round_trip_zeroes_invalid_cells(graph: GridGraph) -> None:
    valid = torch.from_numpy(small_valid())
    grid = torch.randn(2, 3, 6, 7)
    nodes = graph.gather_nodes(grid)
    assert nodes.shape == (2, int(valid.sum()), 3)
    back = graph.scatter_nodes(nodes)
    assert torch.equal(back[..., valid], grid[..., valid])
    assert torch.equal(back[..., ~valid], torch.zeros_like(grid[..., ~valid]))
    assert torch.equal(graph.valid_mask(), valid)


def test_batched_edges_are_block_diagonal_and_cached(graph: GridGraph) -> None:
    edges, weight = graph.batched_edges(3)
    n, e = graph.n_nodes, graph.n_edges
    assert edges.shape == (2, 3 * e) and weight.shape == (3 * e,)
    for b in range(3):
        block = edges[:, b * e : (b + 1) * e]
        assert torch.equal(block, graph.edge_index + b * n)
        assert torch.equal(weight[b * e : (b + 1) * e], graph.edge_weight)
    assert graph.batched_edges(3)[0] is edges


def test_load_grid_graph_reads_npz_and_rejects_bad_weights(tmp_path, graph: GridGraph) -> None:
    path = tmp_path / "graph.npz"
    arrays = {
        "node_index": graph.node_index.numpy(),
        "edge_index": graph.edge_index.numpy(),
        "edge_weight": graph.edge_weight.numpy(),
    }
    np.savez(path, **arrays)
    loaded = load_grid_graph(path, (6, 7))
    assert torch.equal(loaded.neighbors, graph.neighbors)
    assert loaded.state_dict() == {}  # the graph never goes into checkpoints

    np.savez(path, **{**arrays, "edge_weight": arrays["edge_weight"] + 1.5})
    with pytest.raises(ValueError, match="edge_weight"):
        load_grid_graph(path, (6, 7))
    with pytest.raises(ValueError, match="grid"):
        load_grid_graph(tmp_path / "graph.npz", (3, 3))


def test_graph_attention_matches_torch_geometric_gatconv() -> None:
    # uneven in-degrees (node 5 has none) exercise the padded neighbour table
    edge_index = torch.tensor([[1, 2, 3, 4, 0, 2, 4, 1, 5, 0], [0, 0, 0, 0, 1, 1, 2, 3, 3, 4]])
    edge_weight = torch.tensor([0.1, 0.9, 0.5, 0.0, 1.0, 0.3, 0.7, 0.2, 0.6, 0.4])
    graph = GridGraph(torch.arange(6), edge_index, edge_weight, grid_shape=(2, 3))
    torch.manual_seed(0)
    ours = GraphAttention(5, 8, heads=4)
    with torch.no_grad():
        ours.att_edge.normal_()
        ours.bias.normal_()
    reference = GATConv(5, 2, heads=4, edge_dim=1, add_self_loops=False)
    with torch.no_grad():
        reference.lin.weight.copy_(ours.lin.weight)
        reference.att_src.copy_(ours.att_src[None])
        reference.att_dst.copy_(ours.att_dst[None])
        reference.bias.copy_(ours.bias)
        reference.lin_edge.weight.copy_(ours.att_edge.repeat_interleave(2)[:, None])
        reference.att_edge.fill_(0.5)  # sum over the 2 channels × 0.5 = att_edge per head

    x = torch.randn(6, 3, 5)  # node-major [N, B, F]
    loops = torch.arange(6).repeat(2, 1)
    full_edges = torch.cat([edge_index, loops], dim=1)
    full_weight = torch.cat([edge_weight, torch.ones(6)])
    batched = GridGraph(torch.arange(6), full_edges, full_weight, (2, 3))
    edges, weight = batched.batched_edges(3)
    expected = reference(x.transpose(0, 1).reshape(18, 5), edges, weight[:, None])
    got = ours(x, graph).transpose(0, 1).reshape(18, 8)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_pyg_and_dense_graph_attention_compute_the_same_function() -> None:
    # a self loop with weight 0.3 in the edge list: both replace it by one of weight 1
    edge_index = torch.tensor(
        [[1, 2, 3, 4, 0, 2, 4, 1, 5, 0, 2], [0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 2]]
    )
    edge_weight = torch.tensor([0.1, 0.9, 0.5, 0.0, 1.0, 0.3, 0.7, 0.2, 0.6, 0.4, 0.3])
    graph = GridGraph(torch.arange(6), edge_index, edge_weight, grid_shape=(2, 3))
    torch.manual_seed(0)
    pyg = PygGraphAttention(5, 8, heads=4)
    dense = GraphAttention(5, 8, heads=4)
    conv = pyg.conv
    with torch.no_grad():
        conv.bias.normal_()
        dense.lin.weight.copy_(conv.lin.weight)
        dense.att_src.copy_(conv.att_src[0])
        dense.att_dst.copy_(conv.att_dst[0])
        dense.bias.copy_(conv.bias)
        edge_coefficient = conv.lin_edge.weight.view(4, 2) * conv.att_edge[0]
        dense.att_edge.copy_(edge_coefficient.sum(-1))

    x = torch.randn(6, 3, 5, requires_grad=True)  # node-major [N, B, F]
    out_pyg, out_dense = pyg(x, graph), dense(x, graph)
    torch.testing.assert_close(out_pyg, out_dense, rtol=1e-5, atol=1e-6)
    # and the same gradients (the dense layer's backward goes through its own reordering)
    weights = torch.randn(out_dense.shape)
    grad_pyg = torch.autograd.grad((out_pyg * weights).sum(), [x, conv.lin.weight, conv.bias])
    grad_dense = torch.autograd.grad((out_dense * weights).sum(), [x, dense.lin.weight, dense.bias])
    for expected, got in zip(grad_pyg, grad_dense, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------- experts


@pytest.mark.parametrize(("index", "impl"), CASES)
def test_expert_outputs_whole_grid_finite(index: int, impl: str | None, graph: GridGraph) -> None:
    model = make_expert(index, graph, with_impl(DEFAULT[index], impl))
    x = inputs(3, DEFAULT_WINDOW, (6, 7))
    x[..., ~torch.from_numpy(small_valid())] = 0.0
    out = model(x)
    assert out.shape == (3, HORIZON, 6, 7)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("index", "impl"), [(1, "dense"), (1, "pyg"), (3, "dense")])
def test_expert_on_its_zones_receptive_subgraph_gives_the_zone_the_same_loss_and_gradients(
    index: int, impl: str
) -> None:
    valid = np.ones((16, 16), dtype=bool)
    big = synthetic_grid_graph(valid, n_neighbors=8, seed=2)
    zone = torch.zeros(16, 16, dtype=torch.bool)
    zone[7:9, 7:9] = True
    model = make_expert(index, big, with_impl(DEFAULT[index], impl))
    x = inputs(2, DEFAULT_WINDOW, (16, 16), seed=3)
    y = torch.randn(2, HORIZON, 16, 16)

    def loss_and_grads() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        out = model(x)
        loss = masked_mse(out, y, zone)
        loss.backward()
        return out.detach(), loss.detach(), [p.grad.clone() for p in model.parameters()]

    out_full, loss_full, grads_full = loss_and_grads()
    with model.computing_for(zone) as sub:
        assert zone.sum() < sub.n_nodes < big.n_nodes
        out_sub, loss_sub, grads_sub = loss_and_grads()
    assert model.graph is big
    torch.testing.assert_close(out_sub[..., zone], out_full[..., zone], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_sub, loss_full, rtol=1e-5, atol=1e-7)
    for got, expected in zip(grads_sub, grads_full, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)
    # one hop fewer than the model's GAT layers is not enough: the zone's outputs change
    hops = len(model.gat) if index == 1 else 1
    model.graph = big.receptive_subgraph(zone, hops - 1)
    try:
        assert not torch.allclose(model(x)[..., zone], out_full[..., zone], atol=1e-4)
    finally:
        model.graph = big


def test_receptive_subgraph_keeps_the_nodes_within_reach_and_their_edges() -> None:
    # a chain 0 → 1 → 2 → 3 → 4 on a 1 × 5 grid, plus 4 → 0
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    graph = GridGraph(torch.arange(5), edge_index, torch.full((5,), 0.5), grid_shape=(1, 5))
    cells = torch.tensor([[False, False, False, True, False]])
    assert graph.receptive_subgraph(cells, 0).node_index.tolist() == [3]
    sub = graph.receptive_subgraph(cells, 2)
    assert sub.node_index.tolist() == [1, 2, 3]
    assert sub.edge_index.tolist() == [[0, 1], [1, 2]]  # 1 → 2 → 3, renumbered


@pytest.mark.parametrize(("index", "impl"), CASES)
def test_paper_parameter_counts_within_30_percent(index: int, impl: str | None) -> None:
    counts = []
    for shape in [(6, 7), (9, 5)]:
        valid = np.ones(shape, dtype=bool)
        small_graph = synthetic_grid_graph(valid, n_neighbors=8, seed=0)
        cfg = with_impl(PAPER[index], impl)
        model = make_expert(index, small_graph, cfg, window=PAPER_WINDOW)
        counts.append(count_parameters(model))
    assert counts[0] == counts[1], "parameter count must not depend on the grid"
    target = PAPER_TARGET[index]
    assert 0.7 * target <= counts[0] <= 1.3 * target, (index, counts[0])


@pytest.mark.parametrize(("index", "impl"), CASES)
def test_expert_overfits_a_tiny_batch(index: int, impl: str | None, graph: GridGraph) -> None:
    model = make_expert(index, graph, with_impl(DEFAULT[index], impl))
    x = inputs(2, DEFAULT_WINDOW, (6, 7), seed=3)
    gen = torch.Generator().manual_seed(4)
    y = torch.randn(2, HORIZON, 6, 7, generator=gen)
    zone = torch.from_numpy(small_valid())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = masked_mse(model(x), y, zone).item()
    for _ in range(150):
        optimizer.zero_grad()
        loss = masked_mse(model(x), y, zone)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 10, (first, loss.item())


@pytest.mark.parametrize(("index", "impl"), CASES)
def test_expert_is_deterministic_on_cpu(index: int, impl: str | None, graph: GridGraph) -> None:
    x = inputs(2, DEFAULT_WINDOW, (6, 7))
    results = []
    for _ in range(2):
        model = make_expert(index, graph, {**with_impl(DEFAULT[index], impl), "dropout": 0.2})
        torch.manual_seed(7)
        out = model(x)
        out.square().sum().backward()
        results.append((out, [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert torch.equal(a, b)


@functools.cache
def cpu_bf16_lstm_unsupported() -> str | None:
    """Why CPU bfloat16 autocast of an LSTM fails on this host, or None when it works.

    oneDNN has no bf16 LSTM primitive on some CPUs (seen on AMD EPYC hosts of CI's kind), and
    the product never autocasts on CPU (``train.amp`` is CUDA only), so a failure here is a
    property of the host, not of AMES."""
    lstm = torch.nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 4))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0]
        return f"CPU bfloat16 autocast of an LSTM is not supported on this host: {first_line}"
    return None


def _autocast_step(model: torch.nn.Module, device: str, dtype: torch.dtype) -> None:
    model = model.to(device)
    x = inputs(2, DEFAULT_WINDOW, (6, 7)).to(device)
    with torch.autocast(device, dtype=dtype):
        out = model(x)
    target = torch.zeros(2, HORIZON, 6, 7, device=device)
    loss = masked_mse(out, target, torch.ones(6, 7, dtype=bool, device=device))
    loss.backward()
    assert torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: AMES uses mixed precision on CUDA only"
)
@pytest.mark.parametrize(("index", "impl"), CASES)
def test_expert_runs_under_cuda_autocast(index: int, impl: str | None, graph: GridGraph) -> None:
    """The product's mixed precision: float16 autocast on CUDA, as the Trainer does."""
    model = make_expert(index, graph.to("cuda"), with_impl(DEFAULT[index], impl))
    _autocast_step(model, "cuda", torch.float16)


@pytest.mark.parametrize(("index", "impl"), CASES)
def test_expert_runs_under_cpu_bf16_autocast_where_supported(
    index: int, impl: str | None, graph: GridGraph
) -> None:
    model = make_expert(index, graph, with_impl(DEFAULT[index], impl))
    has_lstm = any(isinstance(m, torch.nn.LSTM) for m in model.modules())
    reason = cpu_bf16_lstm_unsupported()
    if has_lstm and reason is not None:
        pytest.skip(reason)
    _autocast_step(model, "cpu", torch.bfloat16)


def test_bf16_probe_reports_a_onednn_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_bf16_lstm_unsupported.cache_clear()

    def no_primitive(*args, **kwargs):
        raise RuntimeError("could not create a primitive descriptor for the LSTM forward")

    monkeypatch.setattr(torch.nn.LSTM, "forward", no_primitive)
    try:
        reason = cpu_bf16_lstm_unsupported()
    finally:
        cpu_bf16_lstm_unsupported.cache_clear()
    assert reason is not None and "primitive descriptor" in reason


def test_expert_model_keys_report_missing_unknown_and_bad_keys(graph: GridGraph) -> None:
    with pytest.raises(ConfigError, match=r"expert2.model: unknown key\(s\) 'epochs'"):
        make_expert(2, graph, {**DEFAULT[2], "epochs": 20})
    broken = {k: v for k, v in DEFAULT[1].items() if k != "gat_heads"}
    with pytest.raises(ConfigError, match="expert1.model.gat_heads: missing key"):
        make_expert(1, graph, broken)
    with pytest.raises(ConfigError, match="expert2.model.temporal_patch: temporal_patch=5"):
        make_expert(2, graph, {**DEFAULT[2], "temporal_patch": 5})
    with pytest.raises(ConfigError, match="expert3.model.recent_months"):
        make_expert(3, graph, {**DEFAULT[3], "recent_months": 13})
    with pytest.raises(ConfigError, match="expert4.model: unknown expert architecture 'none'"):
        make_expert(4, graph, DEFAULT[1])


def test_each_expert_section_builds_its_registered_architecture(graph: GridGraph) -> None:
    assert list(EXPERTS) == ["gnn_tat", "convlstm", "hybrid"]
    for index, name in enumerate(DEFAULT_ARCHITECTURES.values(), start=1):
        assert isinstance(make_expert(index, graph), EXPERTS[name].module)


def first_gat_layer(model: torch.nn.Module) -> torch.nn.Module:
    layers = model.gat
    return layers[0] if isinstance(layers, torch.nn.ModuleList) else layers


@pytest.mark.parametrize("index", [1, 3])
def test_build_expert_picks_and_checks_gat_impl(index: int, graph: GridGraph) -> None:
    cfg = DEFAULT[index]
    pyg = make_expert(index, graph, with_impl(cfg, "pyg"))
    dense = make_expert(index, graph, with_impl(cfg, "dense"))
    unnamed = make_expert(index, graph, {k: v for k, v in cfg.items() if k != "gat_impl"})
    assert isinstance(first_gat_layer(pyg), PygGraphAttention)
    assert isinstance(first_gat_layer(dense), GraphAttention)
    assert isinstance(first_gat_layer(unnamed), PygGraphAttention)  # left out: pyg
    with pytest.raises(
        ConfigError, match=rf"expert{index}.model.gat_impl: gat_impl must be one of .*'sparse'"
    ):
        make_expert(index, graph, with_impl(cfg, "sparse"))


# ------------------------------------------------------------------------------------- loss


def test_masked_mse_ignores_out_of_zone_and_nan_targets() -> None:
    zone = torch.zeros(3, 4, dtype=torch.bool)
    zone[:2, :2] = True
    pred = torch.randn(2, 5, 3, 4, requires_grad=True)
    target = torch.randn(2, 5, 3, 4)
    target[0, 0, 0, 0] = float("nan")  # in zone, but no observation
    target[:, :, 2, 3] = float("nan")  # out of zone and invalid
    loss = masked_mse(pred, target, zone)
    loss.backward()

    use = zone.expand_as(target) & torch.isfinite(target)
    expected = (pred.detach()[use] - target[use]).square().mean()
    torch.testing.assert_close(loss.detach(), expected)
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[~use] == 0).all()
    assert (pred.grad[use] != 0).all()


def test_masked_mse_of_an_empty_zone_is_zero_with_zero_gradient() -> None:
    pred = torch.randn(1, 2, 3, 4, requires_grad=True)
    loss = masked_mse(pred, torch.randn(1, 2, 3, 4), torch.zeros(3, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0
    assert (pred.grad == 0).all()


def test_masked_mse_without_a_mask_uses_every_finite_target_in_float32() -> None:
    pred = torch.randn(2, 3, 4, 5)
    target = torch.randn(2, 3, 4, 5)
    target[0, 1, 2, 3] = float("nan")
    target[1, 0, 0, 0] = float("inf")
    use = torch.isfinite(target)
    expected = (pred[use] - target[use]).square().mean()
    torch.testing.assert_close(masked_mse(pred, target), expected)
    half = masked_mse(pred.half(), target)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, (pred.half().float()[use] - target[use]).square().mean())


# ------------------------------------------------------------------------------ linear path


def output_layer(model: torch.nn.Module, index: int) -> torch.nn.Module:
    """The expert's last layer, the one that maps to the H leads."""
    return model.fusion if index == 3 else model.head


@pytest.mark.parametrize("index", [1, 2, 3])
def test_linear_path_adds_a_per_cell_linear_forecast_to_the_expert(
    index: int, graph: GridGraph
) -> None:
    cfg = {**DEFAULT[index], "linear_path": True}
    model = make_expert(index, graph, cfg).eval()
    plain_params = count_parameters(make_expert(index, graph))
    assert count_parameters(model) == plain_params + (2 * DEFAULT_WINDOW + 2) * HORIZON + HORIZON
    x = inputs(2, DEFAULT_WINDOW, graph.grid_shape)
    assert model.linear is not None
    with torch.no_grad():
        assert torch.count_nonzero(model.linear(x)) == 0  # the path starts at zero,
        assert torch.count_nonzero(model(x)) == 0  # and so does the expert's output layer
        for param in output_layer(model, index).parameters():  # a nonlinear part to add to
            param.normal_(std=0.1, generator=torch.Generator().manual_seed(index))
        base = model(x)
        assert torch.count_nonzero(base) > 0
        weight = model.linear.proj.weight
        weight[:, DEFAULT_WINDOW - 1] = 0.5  # 0.5 × the cell's anomaly at the origin, each lead
        model.linear.proj.bias.fill_(0.1)
        expected = base + 0.5 * x[:, -1, 0].unsqueeze(1) + 0.1
        torch.testing.assert_close(model(x), expected.expand_as(base), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("index", "impl"), CASES)
def test_an_untrained_expert_skips_its_network_with_the_same_forecast_bit_for_bit(
    index: int, impl: str | None, graph: GridGraph, monkeypatch
) -> None:
    """An expert still at epoch 0 forecasts exactly its path: evaluated without gradients it
    does not run its network, and the forecast equals the full computation's."""
    model = make_expert(index, graph, {**with_impl(DEFAULT[index], impl), "linear_path": "ridge"})
    rng = np.random.default_rng(index)
    model.linear.set_weights(rng.normal(scale=0.1, size=(HORIZON, 2 * DEFAULT_WINDOW + 2)),
                             rng.normal(size=HORIZON))  # fmt: skip
    x = inputs(3, DEFAULT_WINDOW, graph.grid_shape)
    model.eval()
    with torch.enable_grad():
        full = model(x).detach()  # with gradients on, the network runs
    path = set(model.linear.modules())
    layers = [m for m in model.modules() if m is not model and m not in path]
    calls = []
    for layer in layers:
        layer.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        skipped = model(x)
    assert not calls and torch.equal(skipped, full)

    with torch.no_grad():  # a trained head: the network runs and adds its part
        output_layer(model, index).bias.fill_(0.25)
        trained = model(x)
    added = (trained - full).flatten()
    assert calls and torch.allclose(added[added.abs() > 1e-3], torch.tensor(0.25), atol=1e-5)
    assert (added.abs() > 1e-3).any()  # on the graph experts, on the graph's cells only


def test_linear_path_is_off_unless_asked(graph: GridGraph) -> None:
    for index in (1, 2, 3):
        model = make_expert(index, graph)
        assert model.linear is None
        assert torch.count_nonzero(output_layer(model, index).weight) > 0  # random init


@pytest.mark.parametrize(("index", "impl"), CASES)
def test_an_expert_starts_as_its_ridge_path_and_learns_the_residual(
    index: int, impl: str | None, graph: GridGraph
) -> None:
    cfg = {**with_impl(DEFAULT[index], impl), "linear_path": "ridge"}
    model = make_expert(index, graph, cfg).eval()
    rng = np.random.default_rng(index)
    coef = rng.normal(scale=0.1, size=(HORIZON, 2 * DEFAULT_WINDOW + 2))
    model.linear.set_weights(coef, rng.normal(size=HORIZON))
    x = inputs(2, DEFAULT_WINDOW, graph.grid_shape)
    with torch.no_grad():
        ridge = model.linear(x)
        assert torch.count_nonzero(ridge) > 0
        assert torch.equal(model(x), ridge)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    target = torch.randn(ridge.shape, generator=torch.Generator().manual_seed(5))
    (model.train()(x) - target).square().mean().backward()
    head = output_layer(model, index)
    assert head.weight.grad is not None and torch.count_nonzero(head.weight.grad) > 0
    optimizer.step()
    with torch.no_grad():
        assert torch.equal(model.linear(x), ridge)  # the ridge path stays fixed
        assert torch.count_nonzero(model.eval()(x) - ridge) > 0  # a nonlinear part now
