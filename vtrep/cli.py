"""The ``vtrep`` command: LightningCLI subcommands (``fit``, ``validate``, ``test``, ``predict``) plus
``probe``, ``extract`` and ``import-videomae``."""

from __future__ import annotations

import importlib
import sys

from lightning.pytorch.cli import LightningCLI


class VtrepCLI(LightningCLI):
    """LightningCLI with models and datamodules given by ``class_path`` in YAML.

    Every trainer also gets :class:`~vtrep.callbacks.RNGStateCheckpoint`, so ``--ckpt_path`` resumes draw
    the same data order and masks as the uninterrupted run, and :class:`~vtrep.callbacks.FiniteLossGuard`,
    which stops at the first NaN / inf loss before it reaches the weights or a checkpoint.
    """

    def instantiate_trainer(self, **kwargs):
        from vtrep.callbacks import FiniteLossGuard, RNGStateCheckpoint
        from vtrep.hardware import warn_if_slow_bf16

        trainer = super().instantiate_trainer(**kwargs)
        for default in (RNGStateCheckpoint, FiniteLossGuard):  # unless the config already gave one
            if not any(isinstance(c, default) for c in trainer.callbacks):
                trainer.callbacks.append(default())
        warn_if_slow_bf16(trainer)
        return trainer


# commands beside LightningCLI's, imported only when used
EXTRA_COMMANDS = {"probe": ("vtrep.eval.probe_cli", "probe_cli"),
                  "extract": ("vtrep.eval.extract_cli", "extract_cli"),
                  "import-videomae": ("vtrep.interop.import_cli", "import_cli")}


def main(args: list[str] | None = None) -> None:
    from vtrep.callbacks import explain_worker_failures

    argv = list(sys.argv[1:] if args is None else args)
    with explain_worker_failures():  # a data worker killed for memory says so, whichever command ran
        if argv and argv[0] in EXTRA_COMMANDS:
            module, function = EXTRA_COMMANDS[argv[0]]
            getattr(importlib.import_module(module), function)(argv[1:])
            return
        VtrepCLI(subclass_mode_model=True, subclass_mode_data=True, args=argv,
                 save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
