"""A generated case with a known dynamic concept: a disc that is visible only while it moves.

Each clip (8 frames, 16 px) has a flat background of one of three colours; in one half of the clip (the
first or the last four frames) a white disc crosses the frame, and in the other half it is absent.

The encoder is a fixed feature map, not a trained network, so the ground truth is unambiguous: per token
(4 × 4 px × 2 frames, grid 4 × 4 × 4) its mean colour over the two frames (3 values) and its motion energy,
the mean |difference| between the two frames (× 4). A trained encoder would have to learn that motion
matters before the metric could be tested; with this map the metric and the pipeline are tested alone:
a token shows the disc only where the motion channel is up, and the background does not depend on motion.

A TopK SAE is trained on those tokens through ``vtrep.tasks.SAETask`` and a Lightning ``Trainer``; the latent
that best matches the moving disc (largest correlation of its code with "the disc is in this token") must
be classified dynamic, and the one that best matches a background colour (tokens of background only)
static.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vtrep.eval.concept_metrics import perturbation_means
from vtrep.sae import TopKSAE
from vtrep.sae.metrics.temporal import response_scores, temporal_classes
from vtrep.tasks import SAETask

BACKGROUNDS = torch.tensor([[0.7, 0.1, 0.1], [0.1, 0.1, 0.7], [0.1, 0.6, 0.1]])


class MotionFeatures(nn.Module):
    """Tokens of 4 × 4 px × 2 frames: mean colour (3) and motion energy (1), t-major like a VideoViT."""

    grid = (4, 4, 4)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, 8, 16, 16) -> (B, 64, 4)
        b = video.shape[0]
        cells = video.unflatten(2, (4, 2)).unflatten(4, (4, 4)).unflatten(6, (4, 4))  # B C t 2 h 4 w 4
        colour = cells.mean(dim=(3, 5, 7))  # (B, C, t, h, w)
        motion = (cells[:, :, :, 1] - cells[:, :, :, 0]).abs().mean(dim=(1, 4, 6))[:, None] * 4  # (B, 1, t, h, w)
        return torch.cat([colour, motion], 1).flatten(2).transpose(1, 2)


def disc_clips(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips ``(B, 3, 8, 16, 16)``, the disc mask ``(B, 8, 16, 16)`` and each clip's background index."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    clips, masks, backgrounds = [], [], torch.randint(0, 3, (count,), generator=g)
    for i in range(count):
        frames = BACKGROUNDS[backgrounds[i]].view(3, 1, 1, 1).expand(3, 8, 16, 16).clone()
        mask = torch.zeros(8, 16, 16, dtype=torch.bool)
        start = 0 if torch.rand(1, generator=g) < 0.5 else 4
        y, x = torch.rand(2, generator=g) * 8 + 4
        angle = torch.rand(1, generator=g) * 6.283
        for f in range(start, start + 4):  # visible only while moving, 2.5 px per frame
            step = f - start - 1.5
            cy, cx = y + 2.5 * step * torch.sin(angle), x + 2.5 * step * torch.cos(angle)
            mask[f] = (yy - cy) ** 2 + (xx - cx) ** 2 <= 2.5 ** 2
        frames[:, mask] = 1.0
        clips.append(frames), masks.append(mask)
    return torch.stack(clips), torch.stack(masks), backgrounds


def _token_truth(masks: torch.Tensor, backgrounds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token (t-major): whether the disc is in it, and its clip's background (−1 where the disc is)."""
    disc = masks.unflatten(1, (4, 2)).unflatten(3, (4, 4)).unflatten(5, (4, 4)).any(2).any(3).any(4).flatten(1)
    background = backgrounds[:, None].expand_as(disc).clone()
    background[disc] = -1
    return disc.flatten(), background.flatten()


def _correlation(codes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    c, t = codes - codes.mean(0), target.float() - target.float().mean()
    return (c * t[:, None]).sum(0) / (c.norm(dim=0) * t.norm()).clamp_min(1e-12)


def test_the_moving_disc_latent_is_dynamic_and_a_background_latent_is_static(tmp_path):
    torch.manual_seed(0)
    clips, masks, backgrounds = disc_clips(96)
    encoder = MotionFeatures()
    with torch.no_grad():
        tokens = encoder.forward_features(clips).reshape(-1, 4)
    loader = DataLoader(TensorDataset(tokens), batch_size=512, shuffle=True)
    trainer = L.Trainer(max_epochs=10, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    task = SAETask(TopKSAE(4, 8, k=1), lr=1e-2, export_sae=False)
    trainer.fit(task, train_dataloaders=loader)
    sae = task.sae.eval()
    with torch.no_grad():
        codes = sae.encode(tokens)
    disc, background = _token_truth(masks, backgrounds)
    moving = int(_correlation(codes, disc).argmax())
    per_colour = torch.stack([_correlation(codes, background == c) for c in range(3)])  # (3, K)
    still = int(per_colour.max(0).values.argmax())
    assert moving != still and _correlation(codes, disc)[moving] > 0.5

    means = perturbation_means(sae, encoder, "video", False, clips.split(32), seed=0)
    scores = response_scores(means["original"], means["frozen"], means["shuffled"])
    classes = temporal_classes(scores["dynamic_score"])
    assert classes[moving] == "dynamic", (scores["dynamic_score"], classes)
    assert classes[still] == "static", (scores["dynamic_score"], classes)
