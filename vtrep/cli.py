"""The ``vtrep`` command: LightningCLI subcommands (``fit``, ``validate``, ``test``, ``predict``) plus
``probe``, ``extract`` and ``import-videomae``.

This module imports nothing heavy: ``vtrep`` / ``vtrep --help`` list the commands without loading torch
or lightning, and each command imports what it needs only when it runs (the Lightning side lives in
:mod:`vtrep.cli_commands`).
"""

from __future__ import annotations

import importlib
import sys

# LightningCLI's subcommands, run by vtrep.cli_commands.VtrepCLI
LIGHTNING_COMMANDS = {"fit": "train a model from YAML configs (pretraining or fine-tuning)",
                      "validate": "run one evaluation epoch over the validation set",
                      "test": "run one evaluation epoch over the test set",
                      "predict": "run inference over the predict set"}

# commands beside LightningCLI's, imported only when used
EXTRA_COMMANDS = {"probe": ("vtrep.eval.probe_cli", "probe_cli"),
                  "extract": ("vtrep.eval.extract_cli", "extract_cli"),
                  "import-videomae": ("vtrep.interop.import_cli", "import_cli")}
EXTRA_HELP = {"probe": "linear-probe a saved encoder (and the same encoder at random init)",
              "extract": "token features of a frozen encoder over one split, as shards",
              "import-videomae": "convert a transformers / original VideoMAE checkpoint to a vtrep encoder"}


def top_level_help() -> str:
    """``vtrep --help``: every command, one line each."""
    width = max(map(len, [*LIGHTNING_COMMANDS, *EXTRA_COMMANDS]))
    lines = ["usage: vtrep <command> [options]", "",
             "Self-supervised representation learning on video and time series.", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in LIGHTNING_COMMANDS.items()]
    lines += [f"  {name:<{width}}  {EXTRA_HELP.get(name, '')}".rstrip() for name in EXTRA_COMMANDS]
    lines += ["", "Run `vtrep <command> --help` for the options of one command.",
              "Set VTREP_DEBUG=1 to see full tracebacks of configuration errors."]
    return "\n".join(lines)


def _run_extra(name: str, argv: list[str]) -> None:
    module, function = EXTRA_COMMANDS[name]
    command = getattr(importlib.import_module(module), function)
    program = sys.argv[0] if sys.argv else ""
    if sys.argv:
        sys.argv[0] = f"vtrep {name}"  # argparse's default prog: `vtrep probe` in the usage line
    else:
        sys.argv.append(f"vtrep {name}")
    try:
        command(argv)
    finally:
        sys.argv[0] = program


def main(args: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(top_level_help())
        sys.exit(0)
    if argv[0] in ("-V", "--version"):
        from vtrep import __version__

        print(f"vtrep {__version__}")
        sys.exit(0)

    from vtrep.callbacks import explain_worker_failures

    with explain_worker_failures():  # a data worker killed for memory says so, whichever command ran
        if argv[0] in EXTRA_COMMANDS:
            _run_extra(argv[0], argv[1:])
            return
        from vtrep.cli_commands import run_lightning

        run_lightning(None if args is None else argv)


def __getattr__(name: str):
    if name == "VtrepCLI":  # kept importable from here, loaded (with lightning) on first use
        from vtrep.cli_commands import VtrepCLI

        return VtrepCLI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
