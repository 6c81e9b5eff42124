"""The Lightning side of the ``vtrep`` command, imported only once a Lightning subcommand runs.

:mod:`vtrep.cli` stays light (``vtrep --help`` imports neither torch nor lightning); this module holds
:class:`VtrepCLI` and the parser that turns a misspelt config key or a wrong value into a short message
(:mod:`vtrep.cli_messages`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from vtrep.cli_messages import ShortParseErrors
from vtrep.errors import UsageError, debug_enabled


def vtrep_choices() -> dict[str, list[str]]:
    """vtrep's tasks and datamodules by class path, importing them so jsonargparse lists them as the known
    subclasses in ``--help`` (and accepts their bare names, ``--model VideoMAETask``)."""
    import datamodules
    import vtrep.tasks

    classes = [getattr(vtrep.tasks, name) for name in vtrep.tasks.__all__]
    # a base of other tasks (PretrainTask) is no choice; a base datamodule (VideoDataModule) is one
    tasks = [f"vtrep.tasks.{c.__name__}" for c in classes if not any(o is not c and issubclass(o, c) for o in classes)]
    data = [f"datamodules.{name}" for name in datamodules.__all__ if name.endswith("DataModule")]
    for name in data:
        getattr(datamodules, name.split(".")[-1])  # datamodules imports its names on first use
    return {"model": tasks, "data": data}


def describe_choices(parser: argparse.ArgumentParser, choices: dict[str, list[str]]) -> None:
    """Name vtrep's classes in the help of ``--model`` / ``--data`` (Lightning's says only "any subclass")."""
    what = {"model": "the task", "data": "the datamodule"}
    for action in parser._actions:
        if action.dest in choices and action.option_strings == [f"--{action.dest}"]:
            action.help = (f"{what[action.dest]}, by class_path and init_args: one of "
                           + ", ".join(choices[action.dest]) + " (or another subclass by its full class_path)")
            action.extra_help = lambda: ""  # jsonargparse's "known subclasses" would list these again


def _local_path(ckpt_path: str) -> bool:
    """Whether Lightning reads ``ckpt_path`` as a local file (not "last" / "best" / a URL / the model registry)."""
    if ckpt_path in ("last", "best", "hpc") or "://" in ckpt_path:
        return False
    return not re.match(r"registry(:|$)", ckpt_path, re.IGNORECASE)


def check_checkpoint_file(ckpt_path: str) -> None:
    """A local ``--ckpt_path`` exists and is a ``torch.save`` file (Lightning would fail deep in ``torch.load``)."""
    from vtrep.io.torch_files import sniff_format

    path = Path(ckpt_path)
    if not path.exists():
        raise FileNotFoundError(f"ckpt_path={ckpt_path!r}: no such checkpoint file")
    if path.is_dir() or sniff_format(path) not in ("torch-zip", "pickle"):
        raise UsageError(f"ckpt_path={ckpt_path!r} is not a Lightning checkpoint (the .ckpt files vtrep fit writes "
                         "under checkpoints/)")


class VtrepArgumentParser(ShortParseErrors, LightningArgumentParser):
    """Lightning's parser, reporting a misspelt key or a wrong value in a few lines (:mod:`vtrep.cli_messages`)."""


USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


def user_error(error: BaseException) -> BaseException | None:
    """The first error a constructor raised under jsonargparse's wrapping of ``error``, or ``None``."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        cause = error.__cause__ or error.__context__
        if cause is None:
            return error if error is not None and "validate against any of the Union" not in str(error) else None
        if isinstance(cause, USER_ERRORS) and "validate against any of the Union" not in str(cause):
            return cause
        error = cause
    return None


class VtrepCLI(LightningCLI):
    """LightningCLI with models and datamodules given by ``class_path`` in YAML.

    Every trainer also gets :class:`~vtrep.callbacks.RNGStateCheckpoint`, so ``--ckpt_path`` resumes draw
    the same data order and masks as the uninterrupted run, and :class:`~vtrep.callbacks.FiniteLossGuard`,
    which stops at the first NaN / inf loss before it reaches the weights or a checkpoint. The run's
    ``config.yaml`` goes to its own folder whatever the logger (:class:`~vtrep.callbacks.run_config.RunDirSaveConfig`),
    and torch's CPU thread count is set so loader workers keep a core each (:func:`vtrep.hardware.apply_num_threads`).
    An SAE's ``d_in`` comes from the datamodule's feature width (:class:`~vtrep.cli_links.SAEWidthLink`).
    """

    def __init__(self, *args, **kwargs):
        from vtrep.callbacks.run_config import RunDirSaveConfig
        from vtrep.cli_links import SAEWidthLink

        self.sae_width = SAEWidthLink(self._refuse)
        kwargs.setdefault("parser_class", VtrepArgumentParser)
        kwargs.setdefault("save_config_callback", RunDirSaveConfig)  # config.yaml in the run's own folder
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --trainer.max_step is an error, not max_steps
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser):
        self.sae_width.add_to(parser)  # called once per subcommand's parser

    def _refuse(self, message: str) -> None:
        """A configuration error found after parsing: one ``vtrep <command>: error:`` line (no usage dump), exit 2."""
        if debug_enabled():
            raise ValueError(message)
        sys.stderr.write(f"vtrep {self.subcommand or ''}".rstrip() + f": error: {message}\n"
                         "(VTREP_DEBUG=1 shows the full error)\n")
        sys.exit(2)

    def setup_parser(self, add_subcommands, main_kwargs, subparser_kwargs):
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        self.parser.prog = "vtrep"
        choices = vtrep_choices()
        subcommands = self.parser._subcommands_action
        if subcommands is not None:
            for name, parser in subcommands._name_parser_map.items():
                parser.prog = f"vtrep {name}"
                describe_choices(parser, choices)
        describe_choices(self.parser, choices)

    def parse_arguments(self, parser, args):
        ShortParseErrors.argv = list(args) if isinstance(args, (list, tuple)) else list(sys.argv[1:])
        if args is None or len(sys.argv) <= 1:
            super().parse_arguments(parser, args)
        else:
            # explicit args are the whole command (vtrep.cli.main(args) from Python or a test): the host's own
            # sys.argv is no mistake of the user's, so Lightning's "both args and sys.argv" warning is moot
            host, sys.argv = sys.argv, sys.argv[:1]
            try:
                super().parse_arguments(parser, args)
            finally:
                sys.argv = host
        # a mistyped or foreign --ckpt_path fails here: Lightning torch.loads it next (for its hparams)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else self.config.get("ckpt_path")
        if isinstance(ckpt_path, str) and _local_path(ckpt_path):
            check_checkpoint_file(ckpt_path)

    def before_instantiate_classes(self):
        settings = self.config.get(self.subcommand) if self.subcommand else self.config
        if settings is not None:
            self.sae_width.check(settings)

    def instantiate_classes(self) -> None:
        """Build the model, data and trainer; a user's bad value refused by a constructor is one line.

        jsonargparse wraps the constructor's error in a union-validation error with a traceback of its
        own; the user needs the constructor's message (e.g. ``repeats must be a positive integer``).
        """
        try:
            super().instantiate_classes()
        except ValueError as error:
            cause = user_error(error)
            if cause is None or debug_enabled():
                raise
            self._refuse(str(cause))

    def instantiate_trainer(self, **kwargs):
        from vtrep.callbacks import FiniteLossGuard, RNGStateCheckpoint
        from vtrep.callbacks.lightning_quirks import work_around_quirks
        from vtrep.callbacks.progress import fix_epoch_display
        from vtrep.hardware import apply_num_threads, warn_if_slow_bf16

        trainer = super().instantiate_trainer(**kwargs)
        for default in (RNGStateCheckpoint, FiniteLossGuard):  # unless the config already gave one
            if not any(isinstance(c, default) for c in trainer.callbacks):
                trainer.callbacks.append(default())
        fix_epoch_display(trainer)
        work_around_quirks(trainer)
        warn_if_slow_bf16(trainer)
        apply_num_threads(trainer, self.datamodule)
        return trainer


def run_lightning(argv: list[str] | None) -> None:
    """``argv=None`` reads ``sys.argv``."""
    import torch

    threads = torch.get_num_threads()
    try:
        VtrepCLI(subclass_mode_model=True, subclass_mode_data=True, args=argv,
                 save_config_kwargs={"overwrite": True})
    finally:  # a run's thread setting (vtrep.hardware) must not outlive it when called from Python
        torch.set_num_threads(threads)
