"""Every ``vtrep benchmark`` suite refuses a bad list or count before it fits anything or writes a file."""

from __future__ import annotations

import pytest

from vtrep.benchmark.ett import benchmark_ett
from vtrep.benchmark.quickstart import benchmark_quickstart
from vtrep.benchmark.ucr import benchmark_ucr
from vtrep.benchmark.video import benchmark_video
from vtrep.errors import UsageError


def ett(tmp_path, **kwargs):
    (tmp_path / "ETTh1.csv").write_text("date,a\n")
    return benchmark_ett(str(tmp_path), str(tmp_path / "out"), datasets=["ETTh1"], progress=False, **kwargs)


def ucr(tmp_path, **kwargs):
    return benchmark_ucr(str(tmp_path), str(tmp_path / "out"), progress=False, **kwargs)


def video(tmp_path, **kwargs):
    return benchmark_video(str(tmp_path), str(tmp_path / "out"), progress=False, **kwargs)


def quickstart(tmp_path, **kwargs):
    return benchmark_quickstart(str(tmp_path / "out"), progress=False, **kwargs)


@pytest.mark.parametrize("suite, kwargs, message", [
    (ett, {"seeds": [-1]}, "seeds must be an integer >= 0, got -1"),
    (ett, {"horizons": []}, "horizons must list at least one value and none twice; got []"),
    (ett, {"horizons": [96, 0]}, "horizons must be a positive integer, got 0"),
    (ett, {"modes": ["probe", "probe"]}, "modes must list at least one value and none twice; got ['probe', 'probe']"),
    (ucr, {"seeds": [0, 0]}, "seeds must list at least one value and none twice; got [0, 0]"),
    (ucr, {"datasets": []}, "datasets must list at least one value and none twice; got []"),
    (video, {"folds": 1}, "folds must be an integer >= 2, got 1"),
    (video, {"protocols": []}, "protocols must list at least one value and none twice; got []"),
    (video, {"protocols": ["knn"], "protocol_options": {"knn": {"neighbours": 5}}},
     "protocol_options ['neighbours'] are not settings of protocol 'knn'; it takes ['k', 'temperature']"),
    (quickstart, {"seeds": [-2]}, "seeds must be an integer >= 0, got -2"),
], ids=["ett_seed", "ett_no_horizon", "ett_zero_horizon", "ett_mode_twice", "ucr_seed_twice", "ucr_no_dataset",
        "video_one_fold", "video_no_protocol", "video_bad_option", "quickstart_seed"])
def test_a_bad_suite_argument_is_refused_before_anything_runs(suite, kwargs, message, tmp_path):
    with pytest.raises(UsageError) as refused:
        suite(tmp_path, **kwargs)
    assert str(refused.value) == message
    assert not (tmp_path / "out").exists()


def test_protocol_settings_are_the_training_functions_keywords():
    from vtrep.eval.probe_cli import check_protocol_options, protocol_settings

    assert protocol_settings("linear") == ["epochs", "batch_size", "base_lr", "warmup_epochs"]
    assert protocol_settings("svm") == [] and protocol_settings("logistic") == []
    assert {"lrs", "weight_decays", "self_attention_blocks", "num_heads"} <= set(protocol_settings("attentive"))
    check_protocol_options("attentive", {"lrs": [1e-3], "self_attention_blocks": 1})  # accepted
    with pytest.raises(UsageError, match=r"protocol_options \['C'\] are not settings of protocol 'svm'; it takes none"):
        check_protocol_options("svm", {"C": 1.0})


def test_a_failed_steps_log_tail_drops_the_childs_own_debug_hint(tmp_path):
    from vtrep.benchmark.runner import log_tail

    log = tmp_path / "fit.log"
    log.write_text("x" * 3000 + "\nSeed set to 0\nvtrep fit: error: bad root\n(VTREP_DEBUG=1 shows the full error)\n")
    assert log_tail(log).splitlines()[-2:] == ["Seed set to 0", "vtrep fit: error: bad root"]
    assert len(log_tail(log)) < 2000
    log.write_text("Traceback (most recent call last):\nKeyError: 'encoder'\n")
    assert log_tail(log) == "Traceback (most recent call last):\nKeyError: 'encoder'"
