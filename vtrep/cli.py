"""The ``vtrep`` command: LightningCLI subcommands (``fit``, ``validate``, ``test``, ``predict``) plus ``probe``, ``extract`` and ``import-videomae``."""

from __future__ import annotations

import sys

from lightning.pytorch.cli import LightningCLI


class VtrepCLI(LightningCLI):
    """LightningCLI with models and datamodules given by ``class_path`` in YAML.

    Every trainer also gets :class:`~vtrep.callbacks.RNGStateCheckpoint`, so ``--ckpt_path`` resumes draw
    the same data order and masks as the uninterrupted run.
    """

    def instantiate_trainer(self, **kwargs):
        from vtrep.callbacks import RNGStateCheckpoint

        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(c, RNGStateCheckpoint) for c in trainer.callbacks):
            trainer.callbacks.append(RNGStateCheckpoint())
        return trainer


def main(args: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "probe":
        from vtrep.eval.probe_cli import probe_cli

        probe_cli(argv[1:])
        return
    if argv and argv[0] == "extract":
        from vtrep.eval.extract_cli import extract_cli

        extract_cli(argv[1:])
        return
    if argv and argv[0] == "import-videomae":
        from vtrep.interop.import_cli import import_cli

        import_cli(argv[1:])
        return
    VtrepCLI(subclass_mode_model=True, subclass_mode_data=True, args=argv,
             save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
