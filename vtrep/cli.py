"""The ``vtrep`` command: LightningCLI subcommands (``fit``, ``validate``, ``test``, ``predict``) plus
``probe``, ``extract``, ``concepts``, ``import-videomae`` and ``benchmark``.

This module imports nothing heavy: ``vtrep`` / ``vtrep --help`` list the commands without loading torch
or lightning, and each command imports what it needs only when it runs (the Lightning side lives in
:mod:`vtrep.cli_commands`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import sys
import warnings

from vtrep.errors import UserError, debug_enabled

# LightningCLI's subcommands, run by vtrep.cli_commands.VtrepCLI
LIGHTNING_COMMANDS = {"fit": "train a model from YAML configs (pretraining or fine-tuning)",
                      "validate": "run one evaluation epoch over the validation set",
                      "test": "run one evaluation epoch over the test set",
                      "predict": "run inference over the predict set"}

# commands beside LightningCLI's, imported only when used
EXTRA_COMMANDS = {"probe": ("vtrep.eval.probe_cli", "probe_cli"),
                  "extract": ("vtrep.eval.extract_cli", "extract_cli"),
                  "concepts": ("vtrep.eval.concepts_cli", "concepts_cli"),
                  "import-videomae": ("vtrep.interop.import_cli", "import_cli"),
                  "benchmark": ("vtrep.benchmark.cli", "benchmark_cli")}
EXTRA_HELP = {"probe": "classify with a frozen encoder (linear, svm, logistic, knn, attentive), beside random init",
              "extract": "token features of a frozen encoder over one split, as shards",
              "concepts": "which SAE latents are dynamic, static or position-coded, beside a random-encoder control",
              "import-videomae": "convert a transformers / original VideoMAE checkpoint to a vtrep encoder",
              "benchmark": "suites of vtrep fit + probe / test runs over datasets and seeds (ucr, ett, video), resumable"}


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


# Library notices that say nothing about the user's run, silenced one by one (message and category or logger),
# never by a blanket filter: a warning about the run itself must still show.
_LIBRARY_WARNINGS = [
    # torch 2.10+ deprecates LeafSpec; Lightning's own _pytree still builds one on every batch transfer
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree"),
    # printed for every IterableDataset with __len__; vtrep's (FeatureShards) split shards per worker and count
    # exactly what they yield
    (r"Your `IterableDataset` has `__len__` defined", UserWarning, r"lightning\.pytorch\.utilities\.data"),
]
_LIBRARY_TIPS = re.compile(r"💡 Tip: .*\[(litlogger|litmodels)\]")  # adverts for Lightning's cloud packages
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                      "lightning_utilities.core.rank_zero")


def _drop_library_tips(record: logging.LogRecord) -> bool:
    return not _LIBRARY_TIPS.match(str(record.msg))


def quiet_library_notices() -> None:
    """Install the filters above; stdlib only, so it costs nothing before torch or Lightning load."""
    for message, category, module in _LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name in _LIGHTNING_LOGGERS:  # loggers made now are the ones Lightning gets later by the same name
        logger = logging.getLogger(name)
        if _drop_library_tips not in logger.filters:
            logger.addFilter(_drop_library_tips)


def _user_facing(error: BaseException) -> BaseException | None:
    """The error behind ``error`` whose message is all a user needs, or ``None``: a path that is missing or
    already taken (the message names it), a :class:`~vtrep.errors.UserError` (a refused value, a failed suite
    run) or Lightning's ``MisconfigurationException``. jsonargparse wraps a constructor's own error in a "Does
    not validate against any of the Union subtypes" dump, so the whole cause chain is searched."""
    kinds: tuple[type, ...] = (FileNotFoundError, NotADirectoryError, FileExistsError, UserError)
    lightning = sys.modules.get("lightning.fabric.utilities.exceptions")
    if lightning is not None:  # loaded once a Lightning command ran: its refusal of a setting (max_epochs -3)
        kinds += (lightning.MisconfigurationException,)
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, kinds):
            return error
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def explain_user_errors(command: str):
    """A missing data folder, a refused value, a failed suite run: one line naming it, not a traceback
    (VTREP_DEBUG=1 keeps the traceback). Any other error is a fault of vtrep's and keeps its traceback."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - anything else is re-raised untouched
        cause = _user_facing(error)
        if cause is None or debug_enabled():
            raise
        sys.stderr.write(f"vtrep {command}: error: {cause}\n(VTREP_DEBUG=1 shows the full error)\n")
        sys.exit(2)


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

    quiet_library_notices()
    from vtrep.callbacks import explain_worker_failures

    # a data worker killed for memory says so, whichever command ran; so does a missing path or a refused value
    with explain_user_errors(argv[0]), explain_worker_failures():
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
