import json

import pytest
import torch

from vtrep.backbones import create_video_vit
from vtrep.pretrained import from_pretrained, save_pretrained


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


def test_missing_and_foreign_configs(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"class_path": "os.system", "config": {}}))
    with pytest.raises(ValueError, match="only vtrep classes"):
        from_pretrained(tmp_path)
