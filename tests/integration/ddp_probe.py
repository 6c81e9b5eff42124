"""Callbacks the DDP tests add through the CLI: which rows each rank trained on per epoch and its losses
(``SeenRows``), and the process group Lightning formed (``Topology``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import torch
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


class Topology(L.Callback):
    """What Lightning and torch.distributed make of the launch, per rank: ``topology<global rank>.json``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_start(self, trainer, pl_module) -> None:
        dist, pids = torch.distributed, [os.getpid()]
        if dist.is_initialized():  # every rank's pid: two separate 1-process runs would each gather only their own
            pids = [None] * dist.get_world_size()
            dist.all_gather_object(pids, os.getpid())
        record = {"pid": os.getpid(), "pids": pids, "world_size": trainer.world_size,
                  "node_rank": trainer.node_rank, "global_rank": trainer.global_rank,
                  "local_rank": trainer.local_rank, "num_nodes": trainer.num_nodes,
                  "dist_world_size": dist.get_world_size() if dist.is_initialized() else None,
                  "backend": dist.get_backend() if dist.is_initialized() else None,
                  "cluster_environment": type(trainer.strategy.cluster_environment).__name__}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"topology{trainer.global_rank}.json").write_text(json.dumps(record))
