"""``vtrep``'s error handling: a user's mistake is one ``error:`` line, a fault of vtrep's keeps its traceback.

A user's mistake is a :class:`~vtrep.errors.UserError` (a refused value, a failed suite run) or a path that is
missing or already taken, anywhere in the cause chain (jsonargparse wraps constructors' errors).
"""

from __future__ import annotations

import pytest

from datamodules.faults.tracker import TooManySkippedVideos
from datamodules.series.ucr import SeriesFileError
from vtrep.benchmark import ett
from vtrep.benchmark.runner import RunFailedError
from vtrep.callbacks.finite_loss import NonFiniteLossError
from vtrep.callbacks.worker_faults import DataLoaderWorkerError
from vtrep.checks import positive_int
from vtrep.errors import UsageError
from vtrep.cli import explain_user_errors


def shortened(error: BaseException, capsys) -> str:
    """The stderr of ``vtrep bench`` failing with ``error``; fails the test when it is re-raised instead."""
    with pytest.raises(SystemExit) as exit_info, explain_user_errors("bench"):
        raise error
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("error", [
    UsageError("modes must be among ['probe']; got ['prob']"),
    SeriesFileError("a.tsv: line 2 has 3 fields"),
    RunFailedError("vtrep fit of Coffee seed 0 failed (exit 1)"),
    FileExistsError("out/encoder exists; import into a new folder"),
    FileNotFoundError("no such folder: data"),
    NonFiniteLossError("non-finite training loss (nan) at global step 9"),
    DataLoaderWorkerError("a data-loading worker ran out of memory"),
    TooManySkippedVideos("train extraction: 2 of 4 videos could not be loaded"),
], ids=["usage", "series_file", "run_failed", "exists", "missing", "nan_loss", "worker", "skipped_videos"])
def test_a_users_mistake_is_one_error_line(error, capsys, monkeypatch):
    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    err = shortened(error, capsys)
    assert err.splitlines() == [f"vtrep bench: error: {error}", "(VTREP_DEBUG=1 shows the full error)"]


def test_a_mistake_wrapped_by_another_error_is_found(capsys, monkeypatch):
    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    try:
        positive_int("epochs", 0)
    except ValueError as cause:
        wrapped = ValueError("Does not validate against any of the Union subtypes ...")
        wrapped.__cause__ = cause
    assert shortened(wrapped, capsys).splitlines()[0] == "vtrep bench: error: epochs must be a positive integer, got 0"


@pytest.mark.parametrize("error", [ValueError("too many values to unpack"), RuntimeError("shape mismatch"),
                                   KeyError("encoder")], ids=["value", "runtime", "key"])
def test_any_other_error_keeps_its_traceback(error, monkeypatch):
    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    with pytest.raises(type(error)), explain_user_errors("bench"):
        raise error


def test_vtrep_debug_keeps_the_traceback_of_a_mistake(monkeypatch):
    monkeypatch.setenv("VTREP_DEBUG", "1")
    with pytest.raises(UsageError), explain_user_errors("bench"):
        raise UsageError("bad")


def test_user_errors_stay_the_builtin_types_callers_catch():
    assert issubclass(UsageError, ValueError) and issubclass(SeriesFileError, ValueError)
    assert issubclass(RunFailedError, RuntimeError)


def test_a_misspelt_ett_mode_is_a_usage_error(tmp_path):
    message = r"modes must be among \['probe', 'finetune', 'supervised'\]; got \['supervise'\]"
    with pytest.raises(UsageError, match=message):
        ett.benchmark_ett(str(tmp_path), str(tmp_path / "out"), modes=["supervise"], progress=False)


LITERAL_IN_A_CLASS = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'lightning.pytorch.core.module.LightningModule'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'vtrep.tasks.SeriesForecastTask':
        Parser key "schedule":
          Expected a typing.Literal['warmup_cosine', 'patchtst_epochs']. Got value: cosine
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='schedule', val='cosine')"""

OPTIONAL_LITERAL_IN_A_CLASS = """Parser key "data":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'lightning.pytorch.core.datamodule.LightningDataModule'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'datamodules.ForecastingDataModule':
        Parser key "split":
          Does not validate against any of the Union subtypes
          Subtypes: [typing.Literal['ett_hourly', 'ett_15min', 'ratio'], <class 'NoneType'>]
          Errors:
            - Expected a typing.Literal['ett_hourly', 'ett_15min', 'ratio']
            - Expected a <class 'NoneType'>
          Given value type: <class 'str'>
          Given value: nope
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='split', val='nope')"""

NESTED_CLASS = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'lightning.pytorch.core.module.LightningModule'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'vtrep.tasks.SeriesForecastTask':
        Parser key "encoder":
          Does not validate against any of the Union subtypes
          Subtypes: [<class 'vtrep.backbones.series_transformer.PatchTSTEncoder'>, <class 'vtrep.backbones.series_mlp.PatchMLPEncoder'>]
          Errors:
            - Problem with given class_path 'vtrep.backbones.PatchTSTEncoder':
                Parser key "d_model":
                  Expected a <class 'int'>. Got value: abc
            - Import path vtrep.backbones.PatchTSTEncoder does not correspond to a subclass of PatchMLPEncoder
          Given value type: <class 'jsonargparse._util.NestedArg'>
          Given value: NestedArg(key='d_model', val='abc')
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='encoder.init_args.d_model', val='abc')"""

OPTIONAL_INT = """Parser key "trainer.max_epochs":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'int'>, <class 'NoneType'>]
  Errors:
    - Expected a <class 'int'>
    - Expected a <class 'NoneType'>
  Given value type: <class 'str'>
  Given value: abc"""


@pytest.mark.parametrize("message, line", [
    (LITERAL_IN_A_CLASS, "model.init_args.schedule must be one of 'warmup_cosine', 'patchtst_epochs'; got 'cosine'"),
    (OPTIONAL_LITERAL_IN_A_CLASS,
     "data.init_args.split must be one of 'ett_hourly', 'ett_15min', 'ratio' or null; got 'nope'"),
    (OPTIONAL_INT, "trainer.max_epochs must be an int or null; got 'abc'"),
    (NESTED_CLASS, "model.init_args.encoder.init_args.d_model must be an int; got 'abc'"),
], ids=["literal", "optional_literal", "optional_int", "nested_class"])
def test_a_wrong_value_is_named_with_what_the_key_takes(message, line):
    from vtrep.cli_messages import wrong_value_message

    assert wrong_value_message(message, "vtrep fit [options]").splitlines()[0] == f"vtrep fit: error: {line}"
    assert wrong_value_message('Parser key "model": something else', "vtrep fit") is None


@pytest.mark.parametrize("args, line", [
    (["benchmark", "ett", "--root", ".", "--output", "o", "--modes", "supervised"],
     "vtrep benchmark ett: error: modes must be a list or null; got 'supervised' (a list is written '[a,b]')"),
    (["benchmark", "ett", "--root", ".", "--output", "o", "--hoizons", "[96]"],
     "vtrep benchmark ett: error: unknown config key 'hoizons'"),
    (["fit", "--config", "configs/experiment/patchtst64_supervised.yaml", "--model.init_args.schedule", "cosine"],
     "vtrep fit: error: model.init_args.schedule must be one of 'warmup_cosine', 'patchtst_epochs'; got 'cosine'"),
    (["probe", "--encoder", "none", "--data", "datamodules.SyntheticVideoDataModule",
      "--data.init_args.num_per_class", "0"], "vtrep probe: error: num_per_class must be an integer >= 1, got 0"),
    (["fit", "--config", "configs/experiment/quickstart.yaml", "--ckpt_path", "README.md"],
     "vtrep fit: error: ckpt_path='README.md' is not a Lightning checkpoint (the .ckpt files vtrep fit writes under "
     "checkpoints/)"),
    (["fit", "--config", "configs/experiment/etth1_forecast.yaml", "--data.init_args.path", "README.md",
      "--trainer.fast_dev_run", "true"],
     "vtrep fit: error: {root}/README.md: no date column 'date'; columns are ['# vtrep']"),
], ids=["benchmark_list", "benchmark_key", "fit_literal", "probe_data_constructor", "fit_ckpt_not_a_checkpoint",
        "fit_csv_not_a_table"])
def test_commands_report_a_wrong_value_or_key_without_the_usage_dump(args, line, capsys, monkeypatch):
    from pathlib import Path

    from vtrep.cli import main

    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    line = line.replace("{root}", str(root))
    with pytest.raises(SystemExit) as refused:
        main(args)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.splitlines()[0] == line, err
    assert "usage:" not in err and "Union" not in err and len(err.splitlines()) <= 3


def test_lightnings_refusal_of_a_trainer_setting_is_one_line(capsys, monkeypatch):
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    error = MisconfigurationException("`max_epochs` must be a non-negative integer or -1. You passed in -3.")
    assert shortened(error, capsys).splitlines()[0] == f"vtrep bench: error: {error}"
