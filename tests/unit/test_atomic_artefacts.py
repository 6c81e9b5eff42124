"""Every artefact write is atomic: a failure while writing the weights leaves an existing output untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vtrep.backbones import create_video_vit


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temporaries included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def failing_writer(*args, **kwargs):
    raise OSError("disk full (simulated)")


def micro():
    torch.manual_seed(0)
    return create_video_vit("micro", img_size=32, num_frames=4, depth=1)


def test_save_pretrained_failure_leaves_the_artefact(tmp_path, monkeypatch):
    import vtrep.io.pretrained as pretrained

    pretrained.save_pretrained(micro(), tmp_path / "enc")
    before = snapshot(tmp_path)
    monkeypatch.setattr(pretrained, "save_file", failing_writer)
    with pytest.raises(OSError, match="simulated"):
        pretrained.save_pretrained(create_video_vit("micro", img_size=32, num_frames=4, depth=2), tmp_path / "enc")
    assert snapshot(tmp_path) == before


def test_a_config_that_is_not_json_fails_before_any_write(tmp_path):
    from vtrep.io.pretrained import save_pretrained

    model = micro()
    model.config = {**model.config, "odd": object()}
    with pytest.raises(TypeError, match="not JSON"):
        save_pretrained(model, tmp_path / "enc")
    assert not (tmp_path / "enc").exists() or not any((tmp_path / "enc").iterdir())


def test_export_saelens_failure_leaves_the_export(tmp_path, monkeypatch):
    import vtrep.sae.io as sae_io
    from vtrep.sae import TopKSAE

    sae_io.export_saelens(TopKSAE(4, 16, k=2), tmp_path / "sl")
    before = snapshot(tmp_path)
    monkeypatch.setattr(sae_io, "save_file", failing_writer)
    with pytest.raises(OSError, match="simulated"):
        sae_io.export_saelens(TopKSAE(4, 32, k=3), tmp_path / "sl")
    assert snapshot(tmp_path) == before


def test_save_hf_videomae_failure_leaves_the_folder(tmp_path, monkeypatch):
    import vtrep.interop.videomae_hf as hf

    hf.save_hf_videomae(tmp_path / "hf", micro())
    before = snapshot(tmp_path)
    monkeypatch.setattr(hf, "save_file", failing_writer)
    with pytest.raises(OSError, match="simulated"):
        hf.save_hf_videomae(tmp_path / "hf", create_video_vit("micro", img_size=32, num_frames=4, depth=2))
    assert snapshot(tmp_path) == before


def test_import_cli_failure_leaves_no_encoder_and_can_be_rerun(tmp_path, monkeypatch):
    import vtrep.interop.import_cli as cli
    import vtrep.io.pretrained as pretrained

    class Report:
        def __str__(self) -> str:
            return "converted"

    monkeypatch.setattr(cli, "import_hf_videomae", lambda source, strict: (micro(), None, Report()))
    real = pretrained.save_file
    monkeypatch.setattr(pretrained, "save_file", failing_writer)
    with pytest.raises(OSError, match="simulated"):
        cli.import_videomae(str(tmp_path / "src"), str(tmp_path / "out"))
    assert sorted(snapshot(tmp_path / "out")) == ["conversion_report.txt"]  # no encoder/, no temporaries
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["conversion_report.txt"]
    monkeypatch.setattr(pretrained, "save_file", real)
    cli.import_videomae(str(tmp_path / "src"), str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out" / "encoder").iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(FileExistsError):
        cli.import_videomae(str(tmp_path / "src"), str(tmp_path / "out"))


def test_atomic_new_folder_refuses_an_existing_folder(tmp_path):
    from vtrep.io.atomic_write import atomic_new_folder

    (tmp_path / "done").mkdir()
    with pytest.raises(FileExistsError):
        atomic_new_folder(tmp_path / "done", lambda p: (p / "x").write_text("x"))
    atomic_new_folder(tmp_path / "new", lambda p: (p / "x").write_text("x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done", "new"]
