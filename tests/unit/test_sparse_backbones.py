"""Sparse video ViT, decoder and series transformer: same weights as dense, exact patterns, real receptive fields."""

import pytest
import torch

from vtrep.attention import BlockTopK, LocalWindow
from vtrep.backbones import VideoViT
from vtrep.backbones.series_transformer import PatchTSTEncoder
from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig
from vtrep.masking import RandomMasking

VIT = dict(img_size=16, num_frames=16, patch_size=8, tubelet_size=2, embed_dim=24, depth=2, num_heads=2)
# grid (8, 2, 2): 8 time steps of 4 tokens, N = 32


def sparse_vit(pattern, backend="blocked", **extra):
    return VideoViT(**VIT, attention_pattern=pattern, attention_backend=backend, **extra)


def test_a_window_covering_the_clip_reproduces_the_dense_vit_with_its_weights():
    torch.manual_seed(0)
    dense = VideoViT(**VIT)
    sparse = sparse_vit(LocalWindow(8), attention_block_size=8)
    sparse.load_state_dict(dense.state_dict())  # a sparse backbone has exactly the dense parameters
    video = torch.randn(2, 3, 16, 16, 16)
    torch.testing.assert_close(sparse.forward_features(video), dense.forward_features(video), atol=1e-5, rtol=1e-5)
    ids_keep = torch.stack([torch.randperm(32)[:11] for _ in range(2)])  # unsorted, as a masking strategy returns
    torch.testing.assert_close(sparse.forward_features(video, ids_keep), dense.forward_features(video, ids_keep),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pattern", [LocalWindow(1), BlockTopK(block=4, top_k=2, window=1)], ids=repr)
def test_blocked_vit_equals_its_dense_backend_with_and_without_masking(pattern):
    torch.manual_seed(0)
    reference = sparse_vit(pattern, "dense")
    fast = sparse_vit(pattern, "blocked", attention_block_size=4)
    fast.load_state_dict(reference.state_dict())
    video = torch.randn(2, 3, 16, 16, 16, requires_grad=True)
    ids_keep = torch.stack([torch.randperm(32)[:13] for _ in range(2)])
    for ids in (None, ids_keep):
        got, want = fast.forward_features(video, ids), reference.forward_features(video, ids)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        weights = torch.randn_like(want)
        torch.testing.assert_close(torch.autograd.grad((got * weights).sum(), video)[0],
                                   torch.autograd.grad((want * weights).sum(), video)[0], atol=1e-5, rtol=1e-5)


def test_local_window_bounds_the_receptive_field_in_frames():
    """Depth 2 × window 1 step: a token of step 0 sees steps 0..2, so frames of step 5 cannot change it."""
    torch.manual_seed(0)
    model = sparse_vit(LocalWindow(1)).eval()
    video = torch.randn(1, 3, 16, 16, 16)
    changed = video.clone()
    changed[:, :, 10:12] += 1.0  # tubelet step 5
    before, after = model.forward_features(video), model.forward_features(changed)
    per_step = (before - after).abs().amax(-1).view(8, 4).amax(-1)
    assert torch.all(per_step[:3] == 0) and torch.all(per_step[3:] > 0)
    dense = VideoViT(**VIT).eval()
    assert (dense.forward_features(video) - dense.forward_features(changed))[0, :4].abs().max() > 0


def test_sparse_decoder_equals_dense_backend_and_window_covering_all_equals_dense_decoder():
    torch.manual_seed(0)
    grid = (8, 2, 2)
    mask = RandomMasking(0.75)(2, grid)
    latent = torch.randn(2, mask.ids_keep.shape[1], 24)
    cfg = dict(dim=16, depth=2, num_heads=2)
    plain = MAEDecoder(24, 96, grid, MAEDecoderConfig(**cfg))
    outputs = []
    for pattern, backend in ((LocalWindow(1), "dense"), (LocalWindow(1), "blocked"), (LocalWindow(8), "blocked")):
        decoder = MAEDecoder(24, 96, grid, MAEDecoderConfig(**cfg, attention_pattern=pattern,
                                                            attention_backend=backend, attention_block_size=4))
        decoder.load_state_dict(plain.state_dict())
        outputs.append(decoder(latent, mask))
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs[2], plain(latent, mask), atol=1e-5, rtol=1e-5)
    assert (outputs[0] - outputs[2]).abs().max() > 1e-3  # the window changes what is computed


def test_series_encoder_blocked_equals_dense_and_causal_ignores_the_future():
    torch.manual_seed(0)
    args = dict(context_length=96, patch_length=4, stride=4, d_model=16, depth=2, num_heads=2, dropout=0.0)
    reference = PatchTSTEncoder(**args, attention_pattern=LocalWindow(3, causal=True)).eval()
    fast = PatchTSTEncoder(**args, attention_pattern=LocalWindow(3, causal=True), attention_backend="blocked",
                           attention_block_size=8).eval()
    fast.load_state_dict(reference.state_dict())
    patches = torch.randn(2, 3, 24, 4)
    torch.testing.assert_close(fast(patches), reference(patches), atol=1e-5, rtol=1e-5)
    later = patches.clone()
    later[:, :, 15:] += 1.0
    diff = (fast(patches) - fast(later)).abs().amax(dim=(0, 1, 3))
    assert torch.all(diff[:15] == 0) and torch.all(diff[15:] > 0)


def test_sparse_backbone_round_trips_through_an_artefact(tmp_path):
    from vtrep.io.pretrained import from_pretrained, save_pretrained

    model = sparse_vit(LocalWindow(2), attention_block_size=8).eval()
    save_pretrained(model, tmp_path / "encoder")
    loaded = from_pretrained(tmp_path / "encoder").eval()
    video = torch.randn(1, 3, 16, 16, 16)
    torch.testing.assert_close(loaded(video), model(video))
    assert loaded.blocks[0].attn.attend.pattern.window == 2 and loaded.blocks[0].attn.attend.backend == "blocked"


@pytest.mark.parametrize("build, message", [
    (lambda: sparse_vit(LocalWindow(0)), "window must be a positive integer"),
    (lambda: sparse_vit(LocalWindow(1, tokens_per_step=3)), "this backbone has 4 tokens per time step"),
    (lambda: VideoViT(**VIT, attention_backend="blocked"), "need an attention_pattern"),
    (lambda: sparse_vit(BlockTopK(block=4, top_k=9)), "top_k=9 is larger than the 8 key blocks of 32 tokens"),
    (lambda: sparse_vit(LocalWindow(1), "flash"), "backend must be one of"),
])
def test_bad_sparse_backbone_configs_fail_at_construction(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("masking", ["tube", "adamae"])
def test_mae_tasks_train_with_a_sparse_backbone_and_decoder(masking):
    """VideoMAE and AdaMAE (whose sampler picks visible tokens anywhere) take the sparse backbone by config."""
    from vtrep.masking import AdaMAESampler, TubeMasking
    from vtrep.tasks import VideoMAETask

    torch.manual_seed(0)
    strategy = TubeMasking(0.75) if masking == "tube" else AdaMAESampler(0.75, num_heads=2)
    decoder = MAEDecoderConfig(dim=16, depth=1, num_heads=2, attention_pattern=LocalWindow(1),
                               attention_backend="blocked", attention_block_size=4)
    task = VideoMAETask(sparse_vit(LocalWindow(1), attention_block_size=4), strategy, decoder, num_viz_clips=0,
                        export_encoder=False)
    _, mask, rec = task(torch.randn(2, 3, 16, 16, 16))
    loss, _ = task.loss_parts(mask, rec)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in task.backbone.blocks.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_resizing_a_sparse_vit_rebuilds_its_pattern_for_the_new_grid():
    model = sparse_vit(LocalWindow(1), attention_block_size=4)
    model.resize(img_size=32, num_frames=8)  # grid (4, 4, 4): 16 tokens a step now
    attend = model.blocks[0].attn.attend
    assert attend is model.blocks[1].attn.attend and attend.pattern.tokens_per_step == 16
    reference = VideoViT(**{**VIT, "img_size": 32, "num_frames": 8}, attention_pattern=LocalWindow(1),
                         attention_backend="dense")
    reference.load_state_dict(model.state_dict())
    video = torch.randn(1, 3, 8, 32, 32)
    torch.testing.assert_close(model(video), reference(video), atol=1e-5, rtol=1e-5)
