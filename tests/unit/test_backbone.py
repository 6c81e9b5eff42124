import pytest
import torch

from vtrep.backbones import PRESETS, VideoViT, create_video_vit
from vtrep.layers.pos_embed import SeparablePosEmbed, sincos_table
from vtrep.masking import TubeMasking


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shapes(name):
    model = create_video_vit(name, img_size=32, num_frames=4).eval()
    dim = PRESETS[name]["embed_dim"]
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(video)
        assert tokens.shape == (2, 2 * 2 * 2, dim)
        assert model.pool(tokens).shape == (2, dim)
        assert model(video).shape == (2, dim)
        mask = TubeMasking(0.5)(2, model.grid)
        assert model.forward_features(video, mask.ids_keep).shape == (2, mask.num_visible, dim)


def test_visible_only_encoding_equals_full_embedding_gathered():
    """Embedding only the visible tokens is the same map as embedding all then selecting."""
    model = create_video_vit("micro", img_size=32, num_frames=4, depth=0).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    ids = torch.tensor([[0, 3, 5], [1, 2, 7]])
    full = model.patch_embed(video) + model.pos_embed()
    expected = model.norm(torch.gather(full, 1, ids[..., None].expand(-1, -1, full.shape[-1])))
    assert torch.allclose(model.forward_features(video, ids), expected, atol=1e-5)


def test_sincos_table_matches_videomae_formula():
    table = sincos_table(10, 8)
    pos, j = 7, 5  # odd channel -> cos
    assert torch.isclose(table[pos, j], torch.cos(torch.tensor(pos / 10000 ** (2 * (j // 2) / 8), dtype=torch.float64)).float())
    assert torch.isclose(table[3, 2], torch.sin(torch.tensor(3 / 10000 ** (2 / 8), dtype=torch.float64)).float())


def test_sincos_is_not_saved_and_regenerates_for_new_grid():
    model = create_video_vit("micro", img_size=32, num_frames=4)
    assert not any("pos_embed" in k for k in model.state_dict())
    model.resize(img_size=48, num_frames=8)
    assert model.pos_embed().shape == (1, 4 * 3 * 3, 96)
    assert model(torch.randn(1, 3, 8, 48, 48)).shape == (1, 96)


def test_separable_pos_embed_resizes_on_load():
    small = create_video_vit("micro", img_size=32, num_frames=4, pos_embed="separable")
    big = create_video_vit("micro", img_size=64, num_frames=8, pos_embed="separable")
    big.load_state_dict(small.state_dict())
    assert big.pos_embed.spatial.shape == (1, 16, 96)
    assert big.pos_embed.temporal.shape == (1, 4, 96)
    # interpolation keeps constant tables constant
    const = SeparablePosEmbed.resize_spatial(torch.ones(1, 4, 3), (5, 5))
    assert torch.allclose(const, torch.ones(1, 25, 3), atol=1e-5)
    # tokens are t-major: temporal embedding changes every h*w tokens
    table = big.pos_embed()
    assert torch.allclose(table[0, 16] - table[0, 0], big.pos_embed.temporal[0, 1] - big.pos_embed.temporal[0, 0])


def test_resize_keeps_weights():
    model = create_video_vit("micro", img_size=32, num_frames=4, pos_embed="separable")
    weight = model.patch_embed.proj.weight.clone()
    model.resize(img_size=64)
    assert torch.equal(model.patch_embed.proj.weight, weight)
    assert model.grid == (2, 4, 4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(img_size=100, patch_size=16), r"img_size=100 is not divisible by patch_size=16"),
    (dict(num_frames=15, tubelet_size=2), r"num_frames=15 is not divisible by tubelet_size=2"),
    (dict(embed_dim=100, num_heads=3), r"embed_dim=100 is not divisible by num_heads=3"),
    (dict(pos_embed="learned"), r"pos_embed must be 'sincos' or 'separable'"),
    (dict(patch_size=0), r"patch_size must be a positive integer"),
])
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VideoViT(**kwargs)


def test_wrong_input_shape_is_named():
    model = create_video_vit("micro", img_size=32, num_frames=4)
    with pytest.raises(ValueError, match=r"\(B, 3, 4, 32, 32\), got \(1, 3, 8, 32, 32\)"):
        model(torch.randn(1, 3, 8, 32, 32))


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown backbone preset 'huge'"):
        create_video_vit("huge")
