import json

import pytest
import torch

from vtrep.backbones import create_video_vit
from vtrep.io.pretrained import from_pretrained, save_pretrained


def test_round_trip(tmp_path):
    model = create_video_vit("micro", img_size=32, num_frames=4, pos_embed="separable").eval()
    save_pretrained(model, tmp_path / "enc")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["config.json", "model.safetensors"]
    loaded = from_pretrained(tmp_path / "enc").eval()
    video = torch.randn(1, 3, 4, 32, 32)
    assert torch.equal(model(video), loaded(video))
    fresh = from_pretrained(tmp_path / "enc", random_init=True)
    assert not torch.equal(fresh.patch_embed.proj.weight, model.patch_embed.proj.weight)


def test_other_architecture_is_refused(tmp_path):
    save_pretrained(create_video_vit("micro", img_size=32, num_frames=4), tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    cfg["config"]["depth"] = 5
    (tmp_path / "a" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"does not match vtrep.backbones.video_vit.VideoViT: missing keys"):
        from_pretrained(tmp_path / "a")


def test_truncated_weights(tmp_path):
    save_pretrained(create_video_vit("micro", img_size=32, num_frames=4), tmp_path / "a")
    weights = tmp_path / "a" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        from_pretrained(tmp_path / "a")


def test_a_pickle_where_safetensors_is_expected_is_refused_unread(tmp_path):
    model = create_video_vit("micro", img_size=32, num_frames=4)
    save_pretrained(model, tmp_path / "a")
    torch.save(model.state_dict(), tmp_path / "a" / "model.safetensors")  # pickle bytes under the safetensors name
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        from_pretrained(tmp_path / "a")


def test_series_encoders_round_trip_with_their_attention_pattern(tmp_path):
    from vtrep.attention.patterns import LocalWindow
    from vtrep.backbones.series_transformer import PatchTSTEncoder

    torch.manual_seed(0)
    encoder = PatchTSTEncoder(context_length=64, patch_length=8, stride=8, d_model=8, depth=1, num_heads=2,
                              attention_pattern=LocalWindow(window=2), attention_backend="blocked",
                              attention_block_size=4).eval()
    save_pretrained(encoder, tmp_path / "s")
    loaded = from_pretrained(tmp_path / "s").eval()
    patches = torch.randn(2, 3, 8, 8)
    assert torch.equal(encoder(patches), loaded(patches))
    assert loaded.config["attention_pattern"] == encoder.config["attention_pattern"]


def test_missing_and_foreign_configs(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"class_path": "os.system", "config": {}}))
    with pytest.raises(ValueError, match="only classes under vtrep, datamodules"):
        from_pretrained(tmp_path)
