"""Untrusted files: every vtrep loader of torch files reads with ``weights_only=True`` (or safetensors), refuses a
pickle that would run code before any of it runs, and names the file and the problem for a truncated or
mismatched checkpoint."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vtrep.backbones import PatchMLPEncoder
from vtrep.eval.encoders import load_encoder, load_task
from vtrep.io.pretrained import from_pretrained, save_pretrained
from vtrep.io.torch_files import read_state_dict
from vtrep.sae import TopKSAE
from vtrep.sae.io import export_saelens, import_saelens
from vtrep.tasks.series_forecast import load_encoder_weights

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs/experiment/series_mae_quickstart.yaml")
ZIP_TRUNCATED = "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory"


class WritesMarker:
    """What a malicious checkpoint holds: unpickling it calls ``open(marker, "w")``, creating the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def refused(path: Path) -> str:
    return (f"{path} refers to io.open, which is not a tensor or plain container; unpickling it could run code, so "
            "vtrep reads checkpoints with torch.load(weights_only=True) and will not unpickle them. If you trust the "
            "file, re-save its state dict (or convert it to safetensors)")


def evil_checkpoint(path: Path, marker: Path, legacy: bool = False) -> Path:
    # the marker first: the refusal names the first global the unpickler meets
    content = {"hyper_parameters": WritesMarker(marker), "state_dict": {"encoder.mlp.0.weight": torch.zeros(2)}}
    if legacy:  # torch.save's pre-1.6 format: a bare pickle stream
        path.write_bytes(pickle.dumps(content, protocol=2))
    else:
        torch.save(content, path)
    return path


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])


def small_encoder() -> PatchMLPEncoder:
    return PatchMLPEncoder(context_length=32, patch_length=8, stride=8, d_model=4, dropout=0.0)


LOADERS = {
    "load_task": lambda path: load_task(CONFIG, str(path)),
    "load_encoder (extract)": lambda path: load_encoder(str(path), CONFIG),
    "SeriesForecastTask encoder_checkpoint": lambda path: load_encoder_weights(small_encoder(), str(path)),
    "import (read_state_dict)": read_state_dict,
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(loader, legacy, tmp_path):
    marker = tmp_path / "pwned"
    path = evil_checkpoint(tmp_path / "evil.ckpt", marker, legacy)
    with pytest.raises(ValueError) as info:
        LOADERS[loader](path)
    assert str(info.value) == refused(path)
    assert not marker.exists(), "the pickled code ran"


def test_resuming_from_a_code_running_checkpoint_is_refused(tmp_path):
    """``vtrep fit --ckpt_path`` goes through Lightning, which leaves ``weights_only`` to torch (True since 2.6)."""
    from vtrep.cli import main

    marker = tmp_path / "pwned"
    path = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(pickle.UnpicklingError, match=r"Unsupported global: GLOBAL io\.open"):
        main(["fit", "--config", CONFIG, "--trainer.max_steps", "1", "--trainer.logger", "false",
              "--trainer.default_root_dir", str(tmp_path), "--data.init_args.generated_per_class", "2",
              "--ckpt_path", str(path)])
    assert not marker.exists(), "the pickled code ran"


@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_truncated_checkpoint_names_the_file(loader, tmp_path):
    task, _ = load_task(CONFIG)
    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": task.state_dict()}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError) as info:
        LOADERS[loader](path)
    assert str(info.value) == f"{path} is not a readable torch checkpoint (truncated or corrupt?): {ZIP_TRUNCATED}"


def test_an_empty_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert str(info.value) == f"{path} is not a readable torch checkpoint (truncated or corrupt?): EOFError"


def test_a_checkpoint_of_another_model_names_the_keys(tmp_path):
    task, _ = load_task(CONFIG)
    state = task.state_dict()
    del state["head.1.bias"]
    state["foreign.weight"] = torch.zeros(1)
    state["head.1.weight"] = torch.zeros(3, 3)
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError) as info:
        load_task(CONFIG, str(path))
    assert str(info.value) == (
        f"{path} does not match the SeriesMAETask of {CONFIG}: missing keys ['head.1.bias'], unexpected keys "
        "['foreign.weight'], shape mismatches ['head.1.weight: checkpoint (3, 3) vs model (8, 64)']")


def test_a_checkpoint_without_a_state_dict_is_not_a_lightning_checkpoint(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(ValueError) as info:
        load_task(CONFIG, str(path))
    assert str(info.value) == f"{path} is not a Lightning checkpoint: it has no 'state_dict' entry"


def test_a_pretraining_checkpoint_of_another_width_names_the_shapes(tmp_path):
    other = PatchMLPEncoder(context_length=32, patch_length=8, stride=8, d_model=6, dropout=0.0)
    path = tmp_path / "pretrain.ckpt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in other.state_dict().items()}}, path)
    with pytest.raises(ValueError) as info:
        load_encoder_weights(small_encoder(), str(path))
    assert str(info.value) == (
        f"{path} does not match the PatchMLPEncoder encoder: missing keys [], unexpected keys [], shape mismatches "
        "['mlp.0.weight: checkpoint (6, 8) vs model (4, 8)', 'mlp.0.bias: checkpoint (6,) vs model (4,)', "
        "'mlp.3.weight: checkpoint (6, 6) vs model (4, 4)', 'mlp.3.bias: checkpoint (6,) vs model (4,)']")


def test_a_saved_encoder_with_weights_of_another_shape_names_them(tmp_path):
    save_pretrained(small_encoder(), tmp_path / "enc")
    weights = tmp_path / "enc" / "model.safetensors"
    tensors = dict(small_encoder().state_dict())
    tensors["mlp.3.bias"] = torch.zeros(5)
    save_file(tensors, str(weights))
    with pytest.raises(ValueError) as info:
        from_pretrained(tmp_path / "enc")
    assert str(info.value) == (
        f"{weights} does not match vtrep.backbones.series_mlp.PatchMLPEncoder: missing keys [], unexpected keys [], "
        "shape mismatches ['mlp.3.bias: checkpoint (5,) vs model (4,)']")


def test_a_truncated_saelens_file_names_the_file(tmp_path):
    export_saelens(TopKSAE(4, 8, k=2), tmp_path / "sae")
    weights = tmp_path / "sae" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ValueError) as info:
        import_saelens(tmp_path / "sae")
    assert str(info.value) == (f"{weights} is not a readable safetensors file (truncated or corrupt?): "
                               f"{info.value.__cause__}")


def test_a_saelens_config_that_is_not_json_names_the_file(tmp_path):
    export_saelens(TopKSAE(4, 8, k=2), tmp_path / "sae")
    (tmp_path / "sae" / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError) as info:
        import_saelens(tmp_path / "sae")
    assert str(info.value) == (f"{tmp_path / 'sae' / 'cfg.json'} is not valid JSON: Expecting property name "
                               "enclosed in double quotes: line 1 column 2 (char 1)")
