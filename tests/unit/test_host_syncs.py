"""Hot paths read no device value on the host: SAE steps (TopK + AuxK, sparse path, BatchTopK), the SAE
task's per-step check, and pattern-attention blocks.

On a GPU each host read (``.item()``, ``bool(t)``, ``float(t)``, boolean-mask indexing, ``torch.equal``)
waits for the device. On CPU nothing waits, so :class:`HostReads` records those reads at the dispatcher
(``_local_scalar_dense`` is what every scalar conversion runs; a bool index hides a ``nonzero``) plus
``tolist``/``numpy``; :func:`test_the_detector_sees_every_kind_of_host_read` keeps it honest.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vtrep.attention import LocalWindow
from vtrep.attention.attend import grid_attention
from vtrep.attention.blocks import run_blocks, transformer_blocks
from vtrep.sae import BatchTopKSAE, TopKSAE
from vtrep.tasks import SAETask

aten = torch.ops.aten
SCALAR_READS = {aten._local_scalar_dense, aten.equal, aten.nonzero, aten.masked_select}
INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}


class HostReads(TorchDispatchMode):
    """Records every op that copies tensor data to the host while active (``ops``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self._saved: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        if packet in SCALAR_READS or (packet in INDEXING and _has_bool_index(args)):
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        for name in ("tolist", "numpy"):  # not dispatched: they read the storage directly
            original = self._saved[name] = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._recording(name, original))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)
        return super().__exit__(*exc)

    def _recording(self, name, original):
        def read(tensor, *args, **kwargs):
            self.ops.append(f"Tensor.{name}")
            return original(tensor, *args, **kwargs)

        return read


def _has_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)


@pytest.mark.parametrize("read", [
    lambda t: bool(t.any()), lambda t: float(t.min()), lambda t: int(t.argmax()), lambda t: t.sum().item(),
    lambda t: t[t > 0], lambda t: t.__setitem__(t > 5, 0.0), lambda t: torch.equal(t, t), lambda t: t.tolist(),
    lambda t: 1 if t.sum() > 0 else 0,
], ids=["bool", "float", "int", "item", "mask-index", "mask-put", "equal", "tolist", "branch"])
def test_the_detector_sees_every_kind_of_host_read(read):
    t = torch.randn(6)
    with HostReads() as reads:
        read(t)
    assert reads.ops, "a host read went unrecorded"
    with HostReads() as reads:
        (t * 2).topk(3).values.relu().sum()
    assert reads.ops == []


def _step(sae, x: torch.Tensor) -> dict[str, torch.Tensor]:
    sae.zero_grad(set_to_none=True)
    out = sae.loss(x)
    out.loss.backward()
    return out.parts


def _reads_in_second_step(sae, x: torch.Tensor) -> tuple[list[str], dict]:
    """Host reads of a loss + backward after a first one (which may read the buffers once)."""
    _step(sae, x)
    with HostReads() as reads:
        parts = _step(sae, x)
        sae.normalise_decoder()
    return reads.ops, parts


@pytest.mark.parametrize("sparse_path", [False, True])
@pytest.mark.parametrize("dead", [False, True])
def test_topk_training_step_reads_nothing_with_and_without_dead_latents(sparse_path, dead):
    sae = TopKSAE(8, 64, k=4, aux_k=6, dead_after_tokens=100, sparse_path=sparse_path).train()
    with torch.no_grad():
        sae.tokens_since_fired[::3] = 1000 if dead else 0
    ops, parts = _reads_in_second_step(sae, torch.randn(32, 8))
    assert ops == []
    assert ("auxk" in parts) == dead and (not dead or parts["auxk"] > 0)


@pytest.mark.parametrize("training", [True, False])
def test_batchtopk_step_reads_nothing_in_training_and_eval(training):
    sae = BatchTopKSAE(8, 64, k=4, aux_k=6, dead_after_tokens=16).train()
    x = torch.randn(32, 8)
    _step(sae, x)  # calibrates the threshold
    ops, parts = _reads_in_second_step(sae.train(training), x)
    assert ops == [] and "auxk" in parts  # 32 silent inputs >= 16: AuxK is on
    assert sae.threshold_updates.item() == (3 if training else 1)  # the EMA moves in training only


def test_batchtopk_threshold_ema_matches_its_definition():
    sae = BatchTopKSAE(4, 16, k=2, threshold_momentum=0.9)
    first, second = torch.tensor([[0.0, 3.0], [2.0, 0.0]]), torch.tensor([[5.0, 0.0], [0.0, 7.0]])
    sae.update_threshold(first)
    sae.update_threshold(torch.zeros(2, 2))  # nothing positive: no update
    sae.update_threshold(second)
    torch.testing.assert_close(sae.threshold, torch.tensor(0.9 * 2.0 + 0.1 * 5.0))
    assert sae.threshold_updates.item() == 2


def test_auxk_is_zero_once_latents_may_be_dead_but_none_is():
    sae = TopKSAE(4, 8, k=8, aux_k=4, dead_after_tokens=5).train()
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every latent fires on every input: none is ever dead
    assert "auxk" not in sae.loss(torch.randn(4, 4)).parts  # 4 inputs seen < 5: none can be dead
    out = sae.loss(torch.randn(1, 4))
    assert not sae.dead.any() and out.parts["auxk"] == 0  # 5 inputs seen: the term is on, and 0
    torch.testing.assert_close(out.loss, out.parts["mse"])


def test_loaded_dead_counters_switch_auxk_on():
    source = TopKSAE(6, 24, k=2, aux_k=3, dead_after_tokens=50)
    with torch.no_grad():
        source.tokens_since_fired[:5] = 80
    sae = TopKSAE(6, 24, k=2, aux_k=3, dead_after_tokens=50).eval()
    assert "auxk" not in sae.loss(torch.randn(4, 6)).parts
    sae.load_state_dict(source.state_dict())
    assert sae.loss(torch.randn(4, 6)).parts["auxk"] > 0


def test_sae_task_step_reads_nothing_once_initialised_and_a_loaded_flag_is_honoured():
    task = SAETask(TopKSAE(8, 64, k=4, aux_k=6, dead_after_tokens=100))
    x = torch.randn(32, 8)
    task.on_train_batch_start(x, 0)  # the first-batch initialisation reads the data, once
    assert task.is_initialised
    with HostReads() as reads:
        for step in range(2):
            task.on_train_batch_start(x, step + 1)
            task.sae.loss(x).loss.backward()
            task.on_before_optimizer_step(None)
            task.on_train_batch_end(None, x, step + 1)
    assert reads.ops == []
    resumed = SAETask(TopKSAE(8, 64, k=4, aux_k=6, dead_after_tokens=100))
    assert not resumed.is_initialised
    resumed.load_state_dict(task.state_dict())
    assert resumed.is_initialised


def _blocks(depth: int):
    attend = grid_attention(LocalWindow(1), "blocked", 8, (4, 2, 4))  # 32 tokens, 8 per frame
    torch.manual_seed(0)
    return transformer_blocks(16, depth, 2, 2.0, True, 0.0, 1e-6, attend=attend)


def test_whole_grid_positions_read_nothing_and_match_no_positions():
    blocks = _blocks(2)
    grid_tokens = torch.randn(2, 32, 16)
    order = torch.stack([torch.randperm(32) for _ in range(2)])  # a decoder: visible then masked tokens
    index = order[..., None].expand_as(grid_tokens)
    expected = torch.gather(run_blocks(blocks, grid_tokens), 1, index)  # also builds the cached layout
    with HostReads() as reads:
        got = run_blocks(blocks, torch.gather(grid_tokens, 1, index), order)
    assert reads.ops == []
    torch.testing.assert_close(got, expected)


def test_subset_positions_read_the_device_once_per_forward_not_per_layer():
    counts = []
    positions = torch.stack([torch.randperm(32)[:13] for _ in range(2)])
    x = torch.randn(2, 13, 16)
    for depth in (1, 4):
        blocks = _blocks(depth)
        run_blocks(blocks, x, positions)
        with HostReads() as reads:
            run_blocks(blocks, x, positions.clone())  # new positions: compared once, then reused per layer
        counts.append(len(reads.ops))
    assert counts[0] == counts[1]
