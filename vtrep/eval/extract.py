"""Token-level features of a frozen encoder, written with their metadata as shards (``datamodules.features``).

Video: every token of every clip, ``(B·N, D)``, with metadata ``clip, t, h, w, label`` — ``clip`` counts
clips in loader order, ``(t, h, w)`` is the token's place in the grid (tokens are t-major), ``label``
is the clip's class or −1 when the loader gives none.
"""

from __future__ import annotations

import torch

from datamodules.features import FeatureShardWriter

VIDEO_META = ["clip", "t", "h", "w", "label"]


def _video_and_label(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, dict):
        return batch["video"], batch.get("label")
    if isinstance(batch, (tuple, list)):
        return batch[0], batch[1] if len(batch) > 1 else None
    return batch, None


@torch.no_grad()
def extract_video_tokens(backbone, loader, writer: FeatureShardWriter, device: str | torch.device = "cpu") -> int:
    """Encode every clip of ``loader`` with ``backbone`` (a ``VideoViT``) and add its tokens to ``writer``.

    Returns the number of clips; the caller closes the writer.
    """
    if writer.meta_names != VIDEO_META:
        raise ValueError(f"the writer's metadata must be {VIDEO_META}, got {writer.meta_names}")
    backbone = backbone.eval().to(device)
    t, h, w = backbone.grid
    cells = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), dim=-1)
    cells = cells.reshape(-1, 3)  # (N, 3) in the encoder's t-major token order
    clips = 0
    for batch in loader:
        video, label = _video_and_label(batch)
        tokens = backbone.forward_features(video.to(device))  # (B, N, D)
        b, n, d = tokens.shape
        labels = torch.full((b,), -1, dtype=torch.long) if label is None else torch.as_tensor(label).long().cpu()
        meta = torch.cat([(clips + torch.arange(b)).repeat_interleave(n)[:, None], cells.repeat(b, 1),
                          labels.repeat_interleave(n)[:, None]], dim=1)
        writer.add(tokens.reshape(b * n, d), meta)
        clips += b
    return clips
