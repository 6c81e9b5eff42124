"""One export path: every task writes ``<run dir>/<export_name>`` at fit end through ``PretrainTask``.

The exported module is the one the method evaluates (TS2Vec: the weight average), and the artefact is
what the loaders read back (``from_pretrained`` / a forecaster's ``encoder_checkpoint``).
"""

from __future__ import annotations

import inspect

import lightning as L
import pytest
import torch

import vtrep.tasks as tasks
from vtrep.backbones import DilatedConvEncoder, PatchTSTEncoder
from vtrep.io.batches import batch_input, batch_input_and_label
from vtrep.io.pretrained import from_pretrained, read_config
from vtrep.tasks import PretrainTask, SeriesForecastTask, SeriesMAETask, TS2VecTask


def fit(task, tmp_path, data):
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, torch.utils.data.DataLoader(data, batch_size=4))
    return tmp_path


def test_every_task_is_a_pretrain_task_and_none_writes_its_own_export():
    classes = [getattr(tasks, name) for name in tasks.__all__ if name != "PretrainTask"]
    assert classes
    for cls in classes:
        assert issubclass(cls, PretrainTask), cls
        assert "eval_encoder" in vars(cls), f"{cls.__name__} does not say which encoder it evaluates"
        # fit-end export is the base class's; a task may only add to it (SAETask releases its collectives)
        if "on_fit_end" in vars(cls):
            assert "super().on_fit_end()" in inspect.getsource(cls.on_fit_end), cls


def test_ts2vec_fit_exports_the_averaged_encoder(tmp_path):
    encoder = DilatedConvEncoder(input_channels=1, output_dim=8, hidden_dim=4, depth=1)
    task = TS2VecTask(encoder, lr=1e-2)
    fit(task, tmp_path, torch.randn(16, 1, 32))
    exported = from_pretrained(tmp_path / "encoder")
    assert read_config(tmp_path / "encoder")["revin"] is False
    averaged = task.representation_encoder.state_dict()
    for name, value in exported.state_dict().items():
        torch.testing.assert_close(value, averaged[name])
    # the iterate moved away from the average: exporting it instead would fail above
    assert any(not torch.equal(value, averaged[name]) for name, value in task.encoder.state_dict().items())


def patch_encoder():
    return PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=8, depth=1, num_heads=2)


def test_series_mae_export_feeds_a_forecaster_like_its_checkpoint(tmp_path):
    pretrain = SeriesMAETask(patch_encoder())
    fit(pretrain, tmp_path, torch.randn(8, 1, 32))
    assert read_config(tmp_path / "encoder")["revin"] is True
    from_folder = SeriesForecastTask(patch_encoder(), horizon=4, encoder_checkpoint=str(tmp_path / "encoder"))
    for name, value in pretrain.encoder.state_dict().items():
        torch.testing.assert_close(from_folder.encoder.state_dict()[name], value)
    with pytest.raises(ValueError, match="does not match"):
        wrong = PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=16, depth=1, num_heads=2)
        SeriesForecastTask(wrong, horizon=4, encoder_checkpoint=str(tmp_path / "encoder"))


def test_export_can_be_turned_off(tmp_path):
    fit(SeriesMAETask(patch_encoder(), export_encoder=False), tmp_path, torch.randn(8, 1, 32))
    assert not (tmp_path / "encoder").exists()


def test_batch_reader_takes_every_batch_shape_and_names_a_missing_key():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    for batch in (x, (x, y), [x], {"video": x, "label": y}):
        assert batch_input(batch, "video") is x
    assert batch_input_and_label((x, y), "series")[1] is not None
    assert batch_input_and_label((x, torch.randn(4, 2)), "series")[1] is None  # a forecast target is no label
    assert batch_input_and_label(x, "series")[1] is None
    with pytest.raises(ValueError, match="'features' entry, got keys \\['video'\\]"):
        batch_input({"video": x}, "features")
