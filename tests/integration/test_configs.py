"""Every shipped config parses, and each experiment resolves to exactly the pieces it names.

Parsing runs in-process through ``vtrep ... --print_config`` (what a user would run to check a config),
so the resolved YAML is LightningCLI's own. Composition rules checked here (see the README's "Configs
compose"): a string value ending in ``.yaml`` is a piece taken whole, relative to the file naming it;
``config: <file>`` adds a piece that carries its top-level key.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from vtrep.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
NO_CHECKPOINTS = {"sae_fight_surv"}  # enable_checkpointing false: the SAE is saved as <log dir>/sae instead


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])


def resolved(args: list[str], capsys) -> dict:
    """The configuration ``vtrep <args> --print_config`` prints."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*args, "--print_config"])
    out = capsys.readouterr()
    assert info.value.code in (0, None), out.err
    return yaml.safe_load(out.out)


def fit_config(name: str, capsys, *extra: str) -> dict:
    return resolved(["fit", "--config", str(CONFIGS / "experiment" / f"{name}.yaml"), *extra], capsys)


def is_piece(value) -> bool:
    return isinstance(value, str) and value.endswith(".yaml")


def mismatches(expected, actual, where: str = "") -> list[str]:
    """Where ``actual`` (resolved, with defaults) disagrees with ``expected`` (a file's own values)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a mapping, resolved {actual!r}"]
        return [m for key, value in expected.items()
                for m in mismatches(value, actual.get(key, "<absent>"), f"{where}.{key}".lstrip("."))]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {len(expected)} items, resolved {actual!r}"]
        return [m for i, (e, a) in enumerate(zip(expected, actual)) for m in mismatches(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: file says {expected!r}, resolved {actual!r}"]


def expand(node, base: Path):
    """A config file's own values with every piece path replaced by the piece's values (recursively)."""
    if is_piece(node):
        path = (base / node).resolve()
        assert path.is_file(), f"piece {node} (from {base}) does not exist"
        return expand(yaml.safe_load(path.read_text()), path.parent)
    if isinstance(node, dict):
        return {key: expand(value, base) for key, value in node.items()}
    if isinstance(node, list):
        return [expand(value, base) for value in node]
    return node


def composed(path: Path) -> dict:
    """What an experiment should resolve to: its ``config:`` piece under its own keys, pieces expanded."""
    own = yaml.safe_load(path.read_text())
    included = own.pop("config", None)
    base = expand(yaml.safe_load((path.parent / included).read_text()), (path.parent / included).parent) \
        if included else {}
    overlap = set(base) & set(own)
    assert not overlap, f"{path.name} repeats {overlap} of its config: piece; a file's node replaces it whole"
    return {**base, **expand(own, path.parent)}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_resolves_to_the_composition_of_its_pieces(name, capsys):
    path = CONFIGS / "experiment" / f"{name}.yaml"
    assert path.read_text().startswith("# "), f"{path.name} lost its leading comment"
    assert mismatches(composed(path), fit_config(name, capsys)) == []


def test_mismatches_catches_a_dropped_or_changed_value():
    resolved_node = {"class_path": "vtrep.masking.TubeMasking", "init_args": {"mask_ratio": 0.9, "extra": 1}}
    assert mismatches({"class_path": "vtrep.masking.TubeMasking", "init_args": {"mask_ratio": 0.9}},
                      resolved_node) == []
    assert mismatches({"init_args": {"mask_ratio": 0.75}}, resolved_node) == [
        "init_args.mask_ratio: file says 0.75, resolved 0.9"]
    assert mismatches({"init_args": {"missing": 2}}, resolved_node) == [
        "init_args.missing: file says 2, resolved '<absent>'"]


def test_named_pieces_are_the_resolved_nodes(capsys):
    """The brief's example spelled out: quickstart's masking, backbone, data and callbacks are the pieces."""
    config = fit_config("quickstart", capsys)
    piece = lambda rel: yaml.safe_load((CONFIGS / rel).read_text())  # noqa: E731
    init = config["model"]["init_args"]
    assert mismatches(piece("masking/random_0.5.yaml"), init["masking"]) == []
    assert mismatches(piece("model/vit_micro_32px_p8t4.yaml"), init["backbone"]) == []
    assert mismatches(piece("data/synthetic_quickstart.yaml")["data"], config["data"]) == []
    assert mismatches(piece("trainer/checkpoint_last.yaml"), config["trainer"]["callbacks"]) == []
    dual = fit_config("dual_masking_quickstart", capsys)
    assert mismatches(piece("masking/dual_tube0.9_cell0.5.yaml"), dual["model"]["init_args"]["masking"]) == []
    assert {k: v for k, v in dual.items() if k != "model"} | {"trainer": None} == \
        {k: v for k, v in config.items() if k != "model"} | {"trainer": None}


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n not in NO_CHECKPOINTS])
def test_experiment_refreshes_last_ckpt_on_a_step_interval_and_at_epoch_ends(name, capsys):
    callbacks = fit_config(name, capsys)["trainer"]["callbacks"]
    last = [c["init_args"] for c in callbacks if c["class_path"].endswith("ModelCheckpoint")
            and c["init_args"]["save_last"]]
    assert any(c["every_n_train_steps"] or c["train_time_interval"] for c in last), callbacks
    assert any(not c["every_n_train_steps"] and not c["train_time_interval"] for c in last), callbacks
    assert all(c["dirpath"] is None for c in last), "a fixed dirpath would be shared by every run"


def test_checkpoints_land_in_the_runs_own_folder(tmp_path, capsys):
    run = tmp_path / "runs"
    main(["fit", "--config", str(CONFIGS / "experiment/series_mae_quickstart.yaml"),
          "--data.init_args.generated_per_class", "4", "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run),
          "--trainer.logger.init_args.save_dir", str(run)])
    found = sorted(p.relative_to(run).as_posix() for p in run.rglob("*.ckpt"))
    assert "series_mae_quickstart/version_0/checkpoints/last.ckpt" in found, found
    assert all(p.startswith("series_mae_quickstart/version_0/checkpoints/") for p in found), found


@pytest.mark.parametrize("experiment, piece", [
    ("quickstart", "data/synthetic.yaml"), ("quickstart", "data/synthetic_quickstart.yaml"),
    ("fight_surv_pretrain", "data/fight_surv.yaml"), ("series_mae_sparse", "data/synthetic_series.yaml"),
    ("ts2vec_quickstart", "data/ucr.yaml"), ("etth1_pretrain", "data/etth1.yaml")])
def test_data_piece_added_with_config_replaces_the_experiments_data(experiment, piece, capsys):
    data = fit_config(experiment, capsys, "--config", str(CONFIGS / piece))["data"]
    assert mismatches(yaml.safe_load((CONFIGS / piece).read_text())["data"], data) == []


@pytest.mark.parametrize("piece", sorted(p.name for p in (CONFIGS / "masking").glob("*.yaml")))
def test_masking_piece_is_a_masking_value(piece, capsys):
    masking = fit_config("videomae_long_sparse", capsys, "--model.init_args.masking",
                         str(CONFIGS / "masking" / piece))["model"]["init_args"]["masking"]
    assert mismatches(expand(piece, CONFIGS / "masking"), masking) == []


@pytest.mark.parametrize("piece", sorted(p.name for p in (CONFIGS / "sae").glob("*.yaml")))
def test_sae_piece_is_an_sae_value(piece, capsys):
    sae = fit_config("sae_fight_surv", capsys, "--model.init_args.sae", str(CONFIGS / "sae" / piece))
    assert mismatches(expand(piece, CONFIGS / "sae"), sae["model"]["init_args"]["sae"]) == []


@pytest.mark.parametrize("model", ["videomae_small", "maest_small", "adamae_small", "videomae_v2_dual_small"])
def test_model_piece_composes_with_trainer_and_data_pieces(model, capsys):
    files = [CONFIGS / "trainer/cpu.yaml", CONFIGS / f"model/{model}.yaml", CONFIGS / "data/fight_surv.yaml"]
    config = resolved(["fit", *[arg for f in files for arg in ("--config", str(f))]], capsys)
    for path in files:
        assert mismatches(expand(yaml.safe_load(path.read_text()), path.parent), config) == [], path.name


@pytest.mark.parametrize("trainer", sorted(p.stem for p in (CONFIGS / "trainer").glob("*.yaml")
                                           if p.stem != "checkpoint_last"))
def test_trainer_piece_overrides_an_experiments_trainer_keys(trainer, capsys):
    path = CONFIGS / "trainer" / f"{trainer}.yaml"
    config = fit_config("quickstart", capsys, "--config", str(path))
    assert mismatches(yaml.safe_load(path.read_text()), config) == []


@pytest.mark.parametrize("command, config", [("probe", "probe/quickstart.yaml"), ("probe", "probe/fight_surv.yaml"),
                                             ("extract", "extract/fight_surv.yaml")])
def test_probe_and_extract_configs_parse(command, config, capsys):
    extra = ["--output", "runs/x"] if command == "extract" else []
    parsed = resolved([command, "--config", str(CONFIGS / config), "--encoder", "runs/x/encoder", *extra], capsys)
    assert mismatches(yaml.safe_load((CONFIGS / config).read_text()), parsed) == []
