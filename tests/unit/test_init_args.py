"""One record of constructor arguments (vtrep.io.init_args) for every saved component, and what variants declare."""

from __future__ import annotations

import json

import pytest
import torch

from vtrep.attention import BlockTopK, FixedPattern, LocalWindow, Pattern, PatternAttention, StridedPattern
from vtrep.backbones import DilatedConvEncoder, PatchMLPEncoder, VideoViT
from vtrep.io.init_args import RecordsInitArgs, to_json
from vtrep.io.pretrained import from_pretrained, save_pretrained
from vtrep.sae import AbsTopKSAE, BatchTopKSAE, JumpReLUSAE, MatryoshkaSAE, ReLUL1SAE, TopKSAE
from vtrep.sae.base import SAELENS_LOADERS


class Base(RecordsInitArgs):
    def __init__(self, a: int, b: tuple = (1, 2)) -> None:
        self.a, self.b = a, b


class Child(Base):
    def __init__(self, c: str = "x", a: int = 3, resolved: int | None = None) -> None:
        super().__init__(a)
        self.resolve_init_args(resolved=7 if resolved is None else resolved, b="not recorded by Child")


class Inherits(Base):
    pass


class Keywords(RecordsInitArgs):
    def __init__(self, a: int = 1, **rest) -> None:
        pass


def test_the_record_is_the_outermost_constructor_with_defaults_as_json():
    assert Base(5).config == {"a": 5, "b": [1, 2]}
    assert Child(a=4).config == {"c": "x", "a": 4, "resolved": 7}  # the parent's super() call records nothing
    assert Inherits(2).config == {"a": 2, "b": [1, 2]}
    assert Keywords(pattern=LocalWindow(1)).config == {
        "a": 1, "pattern": {"class_path": "vtrep.attention.patterns.local_window.LocalWindow",
                            "init_args": {"window": 1, "tokens_per_step": 1, "causal": False}}}
    assert to_json({"t": (1, 2.5, None), "n": torch.tensor(3).item()}) == {"t": [1, 2.5, None], "n": 3}


def test_patterns_record_their_arguments_and_a_placed_copy_its_grid():
    pattern = FixedPattern(4, summary=2)
    placed = pattern.on_grid(16)
    assert pattern.config == {"block": 4, "summary": 2, "tokens_per_step": 1, "causal": False}
    assert placed.config["tokens_per_step"] == 16 and pattern.config["tokens_per_step"] == 1
    assert Pattern.from_config(placed.to_config()).tokens_per_step == 16
    assert repr(pattern) == "FixedPattern(block=4, summary=2, tokens_per_step=1, causal=False)"
    # internal parts record their own constructors
    assert [type(p).__name__ for p, _ in StridedPattern(3).parts(12)] == ["LocalWindow", "ResidueClass"]


def test_video_vit_config_follows_resize_and_round_trips(tmp_path):
    model = VideoViT(img_size=32, num_frames=4, embed_dim=24, depth=1, num_heads=2, pos_embed="separable",
                     attention_pattern=LocalWindow(window=1), attention_backend="blocked").eval()
    assert model.config["attention_pattern"]["init_args"] == {"window": 1, "tokens_per_step": 1, "causal": False}
    model.resize(img_size=64)
    assert model.config["img_size"] == 64
    save_pretrained(model, tmp_path / "v")
    loaded = from_pretrained(tmp_path / "v").eval()
    video = torch.randn(1, 3, 4, 64, 64)
    assert loaded.config == model.config and torch.equal(loaded(video), model(video))


def test_series_encoders_without_a_hand_written_config_save_and_load(tmp_path):
    torch.manual_seed(0)
    for i, encoder in enumerate([DilatedConvEncoder(2, output_dim=8, hidden_dim=4, depth=2),
                                 PatchMLPEncoder(context_length=24, patch_length=6, stride=6, d_model=8)]):
        save_pretrained(encoder.eval(), tmp_path / str(i))
        loaded = from_pretrained(tmp_path / str(i)).eval()
        assert type(loaded) is type(encoder) and loaded.config == encoder.config


def test_an_artefact_written_by_the_hand_made_configs_still_loads(tmp_path):
    """config.json as the earlier hand-built dicts wrote it (same keys) rebuilds the same modules."""
    old = {"img_size": 32, "num_frames": 4, "patch_size": 16, "tubelet_size": 2, "in_chans": 3, "embed_dim": 24,
           "depth": 1, "num_heads": 2, "mlp_ratio": 4.0, "qkv_bias": True, "drop_path_rate": 0.0,
           "pos_embed": "sincos", "norm_eps": 1e-6, "final_norm": True,
           "attention_pattern": {"class_path": "vtrep.attention.patterns.local_window.LocalWindow",
                                 "init_args": {"tokens_per_step": 1, "causal": False, "window": 1}},
           "attention_backend": "blocked", "attention_block_size": None}
    model = VideoViT(**old)
    save_pretrained(model, tmp_path / "v")
    meta = json.loads((tmp_path / "v" / "config.json").read_text())
    meta["config"] = old
    (tmp_path / "v" / "config.json").write_text(json.dumps(meta))
    loaded = from_pretrained(tmp_path / "v")
    assert loaded.config == {**old, "attention_pattern": model.config["attention_pattern"]}
    sae_old = {"d_in": 4, "num_latents": 8, "k": 3, "aux_k": 2, "aux_coef": 1 / 32,
               "dead_after_tokens": 10_000_000, "threshold_momentum": 0.95}
    assert BatchTopKSAE(**sae_old).config == sae_old


def test_sae_configs_hold_resolved_values():
    assert TopKSAE(8, 64, k=4).config["aux_k"] == 4
    assert ReLUL1SAE(4, 8).config["l1_coef"] == pytest.approx(5 / 4)
    assert MatryoshkaSAE(4, 16, k=2, prefixes=(2, 8)).config["prefixes"] == [2, 8, 16]
    assert "sparse_path" not in BatchTopKSAE(4, 8, k=2).config and "sparse_path" in TopKSAE(4, 8, k=2).config


def test_saelens_architecture_is_declared_per_variant():
    assert {name: cls.__name__ for name, cls in SAELENS_LOADERS.items()} == {
        "topk": "TopKSAE", "jumprelu": "JumpReLUSAE", "standard": "ReLUL1SAE"}
    assert MatryoshkaSAE.saelens_architecture == "topk" and BatchTopKSAE.saelens_architecture == "jumprelu"
    assert AbsTopKSAE.saelens_architecture is None
    model, extra = TopKSAE(4, 8, k=3).saelens_form()
    assert extra == {"k": 3}
    with pytest.raises(ValueError, match="signed codes"):
        AbsTopKSAE(4, 8, k=2).saelens_form()


def test_rank_reduce_is_one_hook_for_every_variant():
    calls = []

    def reduce(tensor, op):
        calls.append(op)
        return tensor * 2 if op == "sum" else tensor / 2  # as if a second rank saw the same inputs / half

    topk = TopKSAE(4, 8, k=2, dead_after_tokens=100)
    assert topk.rank_reduce(torch.ones(2), "sum").tolist() == [1.0, 1.0]  # single process: unchanged
    topk.set_rank_reduce(reduce)
    topk.update_firing(torch.zeros(5, 8))
    assert calls == ["sum"] and topk.tokens_since_fired.tolist() == [10] * 8
    batch = BatchTopKSAE(4, 8, k=2)
    batch.set_rank_reduce(reduce)
    codes = torch.zeros(2, 8)
    codes[0, 1] = 0.8
    batch.update_threshold(codes)
    assert calls[-1] == "min" and float(batch.threshold) == pytest.approx(0.4)
    batch.set_rank_reduce(None)
    assert batch.rank_reduce(torch.tensor(3.0), "min") == 3.0
    assert not hasattr(topk, "firing_reduce") and not hasattr(batch, "threshold_reduce")


def test_the_saved_copy_drops_the_rank_reduce(tmp_path):
    from vtrep.sae.io import folded_copy

    class Task:  # a collective's owner must not be deep-copied into the artefact
        def __deepcopy__(self, memo):
            raise AssertionError("the task was copied")

        def reduce(self, tensor, op):
            return tensor

    sae = TopKSAE(4, 8, k=2)
    sae.set_rank_reduce(Task().reduce)
    assert not folded_copy(sae).reduces_across_ranks and sae.reduces_across_ranks


def test_dynamic_patterns_are_declared():
    assert BlockTopK.is_dynamic and not LocalWindow.is_dynamic and not Pattern.is_dynamic
    assert not hasattr(BlockTopK, "flex_mask_mod") and not hasattr(BlockTopK, "content_dependent")
    with pytest.raises(ValueError, match="BlockTopK with backend='flex'"):
        PatternAttention(BlockTopK(block=4, top_k=1), "flex")
    attend = PatternAttention(BlockTopK(block=4, top_k=1, window=1), "blocked")
    q = k = v = torch.randn(1, 1, 16, 4)
    assert attend(q, k, v).shape == (1, 1, 16, 4) and attend.block_size == 4


def test_jumprelu_records_floats():
    assert JumpReLUSAE(4, 8, threshold_init=0.5).config == {"d_in": 4, "num_latents": 8, "threshold_init": 0.5,
                                                            "bandwidth": 0.001, "l0_coef": 1e-3}
