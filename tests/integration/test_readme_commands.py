"""Every ``vtrep`` command line in the README's fenced code blocks runs, at its smallest setting.

The commands run in-process (one subprocess each would cost ~10 s of imports) from a scratch folder
holding a ``configs`` link, so the README's relative ``configs/...`` and ``runs/...`` paths work as
written. Placeholders are filled from the runs the earlier commands produced (``runs/.../encoder``,
``<pretrain>/last.ckpt``, ``--config ...``), so the chains fit -> validate / probe / extract -> SAE fit are
exercised as documented. Real data comes from ``../shared/data`` through ``$VTREP_DATA``, with the fight
clips cut to 6 per class to keep the file within ~90 s.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from datamodules.common.data_root import DATA_ENV
from vtrep.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("VTREP_SHARED", ROOT.parent / "shared")) / "data"
FIGHT_CLIPS_PER_CLASS = 6
TINY_VIDEO = ["--data.init_args.num_per_class", "3", "--data.init_args.num_workers", "0",
              "--data.init_args.batch_size", "4"]
GENERATED_VIDEO = ("quickstart", "adamae_quickstart", "dual_masking_quickstart", "videomae_long_sparse",
                   "sae_concepts_synthetic")
# commands that cannot run here, and why
SKIPS = {"import-videomae": "needs a downloaded transformers / original VideoMAE checkpoint (none is shipped; "
                            "tests/unit cover the conversion)",
         "runs/imported": "probes the output of import-videomae, which needs a downloaded checkpoint",
         "vtrep benchmark": "a suite of real fits (minutes); tests/integration/test_benchmark.py runs the runner "
                            "on generated sets and, marked slow, on real UCR sets"}
# which run a placeholder stands for, by a word of the command
ENCODER_FOR = {"fight_surv": "runs/fight_surv_pretrain/version_0/encoder",
               "": "runs/dual_masking_quickstart/version_0/encoder"}
FIT_RUN = "runs/dual_masking_quickstart/version_0"  # the README's quickstart line is fast_dev_run: no files


def readme_commands() -> list[str]:
    """The ``vtrep ...`` lines of the README's code blocks, continuation lines joined, comments cut."""
    shell, inside, kept = False, False, []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            inside, shell = not inside, line.strip("`").strip() in ("", "bash", "sh", "shell")
        elif inside and shell:
            kept.append(line)
    text = "\n".join(kept).replace("\\\n", " ")
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    commands = [" ".join(line.split()) for line in lines if line.startswith("vtrep ")]
    # the SAE section's "+ --split val -> fight_val" note, spelled out (the SAE fit reads both folders)
    train = next((c for c in commands if c.endswith("--output runs/features/fight_train")), None)
    return commands + ([train.replace("fight_train", "fight_val") + " --split val"] if train else [])


def uses_shared_data(command: str) -> bool:
    if "--data.root" in command:  # a shipped config pointed at other data ("Your own data")
        return False
    return any(word in command for word in ("fight_surv", "ucr.yaml", "etth1", "ETT-small"))


def own_clips(scratch: Path) -> None:
    """The README's ``my_clips``: the moving-dot clips its "Your own data" section says to try (reused if there)."""
    from datamodules.video.generated import generate_moving_sprites

    generate_moving_sprites(str(scratch / "my_clips"), 3, num_frames=32, size=32)


def order(commands: list[str]) -> list[str]:
    """Commands that make runs first, then those reading them (the README reads top-down by topic)."""
    def rank(command: str) -> int:
        if command.startswith("vtrep concepts"):
            return 4  # reads the SAE fits
        if "sae_fight_surv" in command or "sae_concepts_synthetic_sae" in command:
            return 3
        return 2 if ("runs/" in command or "<pretrain>" in command or " ... " in command) else 1
    return sorted(commands, key=rank)


def fill(command: str, scratch: Path) -> list[str]:
    """The command's arguments with placeholders filled and the smallest run settings appended."""
    encoder = next(run for word, run in ENCODER_FOR.items() if word in command)
    command = (command.replace("runs/.../encoder", encoder)
               .replace("runs/.../checkpoints/last.ckpt", f"{FIT_RUN}/checkpoints/last.ckpt")
               .replace("<pretrain>/last.ckpt", "runs/etth1_pretrain/version_0/checkpoints/last.ckpt")
               .replace("--config ...", f"--config {FIT_RUN}/config.yaml"))
    args = shlex.split(command)[1:]
    online = "sae_online" in command  # the clips' datamodule sits inside the online token datamodule
    if args[0] in ("fit", "validate") and "--print_config" not in args:
        if any(f"experiment/{name}.yaml" in command for name in GENERATED_VIDEO + ("sae_online_quickstart",)):
            args += [arg.replace("--data.", "--data.init_args.data.") if online else arg for arg in TINY_VIDEO]
        if "model/videomae_small.yaml" in command:  # ViT-S at 224 px: one clip a step keeps it to seconds
            args += ["--data.init_args.batch_size", "1"]
        # loader workers and the sanity check each cost seconds a run and test nothing the README claims
        args += ["--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "1",
                 "--trainer.num_sanity_val_steps", "0",
                 "--data.init_args.data.init_args.num_workers" if online else "--data.init_args.num_workers", "0"]
        if args[0] == "fit" and "--trainer.fast_dev_run" not in args:
            # one step in one epoch, not fast_dev_run: later commands read the run's checkpoint and encoder
            args += ["--trainer.max_epochs", "1", "--trainer.max_steps", "1", "--trainer.limit_train_batches", "1"]
    if args[0] == "probe":
        args += ["--epochs", "2"] + (["--folds", "2"] if "--folds" in args else [])  # k-fold runs at any k
    if args[0] == "extract" and "configs/extract/synthetic.yaml" in command:
        args += TINY_VIDEO  # the clips the tiny fit of sae_concepts_synthetic generated
    if args[0] in ("probe", "extract"):
        args += ["--data.init_args.num_workers", "0"]
    return args


def tiny_shared_data(scratch: Path) -> None:
    """``$VTREP_DATA/../shared/data`` with the real UCR / ETT folders and a few fight clips."""
    data = scratch / "shared" / "data"
    data.mkdir(parents=True)
    for name in ("UCRArchive_2018", "ETT-small"):
        (data / name).symlink_to(SHARED_DATA / name)
    for label in ("fight", "noFight"):
        (data / "fight_surv" / label).mkdir(parents=True)
        for clip in sorted((SHARED_DATA / "fight_surv" / label).glob("*.mp4"))[:FIGHT_CLIPS_PER_CLASS]:
            (data / "fight_surv" / label / clip.name).symlink_to(clip)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    (folder / "work").mkdir()
    (folder / "work" / "configs").symlink_to(ROOT / "configs")
    if SHARED_DATA.is_dir():
        tiny_shared_data(folder)
    return folder / "work"


def test_readme_has_the_documented_commands():
    commands = readme_commands()
    assert "vtrep fit --config configs/experiment/quickstart.yaml --trainer.fast_dev_run 2" in commands
    assert any("ts2vec_quickstart.yaml --config configs/data/ucr.yaml" in c for c in commands), commands
    assert len(commands) >= 15, commands


@pytest.mark.parametrize("command", order(readme_commands()))
def test_readme_command_runs(command, scratch, monkeypatch, capsys):
    reason = next((why for word, why in SKIPS.items() if word in command), None)
    if reason:
        pytest.skip(reason)
    if uses_shared_data(command) and not SHARED_DATA.is_dir():
        pytest.skip(f"real data: {SHARED_DATA} is absent (set VTREP_SHARED to the folder holding data/)")
    monkeypatch.chdir(scratch)
    monkeypatch.setenv(DATA_ENV, str(scratch))  # ../shared/data resolves to the scratch copy
    monkeypatch.setenv("VTREP_CACHE", str(scratch.parent / "cache"))
    monkeypatch.setattr(sys, "argv", ["vtrep"])
    if "my_clips" in command:
        own_clips(scratch)
    args = fill(command, scratch)
    try:
        main(args)
    except SystemExit as exit_info:  # --print_config and the extra commands end by exiting
        assert exit_info.code in (0, None), f"{shlex.join(args)} exited {exit_info.code}: {capsys.readouterr().err}"
