"""A callback the DDP test adds through the CLI: which rows each rank trained on per epoch, and its losses."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from safetensors.torch import save_file


class SeenRows(L.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir, self.seen, self.losses = Path(out_dir), {}, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if isinstance(batch, dict):  # feature rows carry their row number
            self.seen.setdefault(trainer.current_epoch, []).extend(batch["meta"][:, 0].tolist())
        else:  # (video, label): only how many
            self.seen.setdefault(trainer.current_epoch, []).extend([-1] * len(batch[0]))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))  # this rank's batch mean

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))
        (self.out_dir / f"losses{trainer.global_rank}.json").write_text(json.dumps(self.losses))
        # each rank's replica, to check that they stayed equal
        state = {k: v.detach().cpu().contiguous() for k, v in pl_module.state_dict().items()}
        save_file(state, str(self.out_dir / f"rank{trainer.global_rank}.safetensors"))
