"""Does AdaMAE learn to look where the information is? A measured check on clips with known motion.

    python tools/bench/adamae_focus.py --steps 400 --picture adamae_focus.png

Clips show one disc bouncing over a flat static background (``datamodules.video.generated_object``),
so the tokens the disc touches are known. An AdaMAE task is pretrained on such clips; on held-out
clips we compare the sampler's mean probability on object tokens with that on background tokens,
before and after training. Clips are fed as in-memory tensors (no codec), so flat background
patches are exactly flat.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from bench_training import make_optimizer, train_step
from einops import rearrange


def object_tokens(masks: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """``(B, N)`` bool: tokens whose tubelet touches the object, from pixel masks ``(B, T, H, W)``."""
    cells = rearrange(masks, "b (t kt) (h kh) (w kw) -> b (t h w) (kt kh kw)",
                      kt=tubelet_size, kh=patch_size, kw=patch_size)
    return cells.any(dim=-1)


@torch.no_grad()
def focus_ratio(task, video: torch.Tensor, on_object: torch.Tensor) -> dict:
    """Mean sampling probability on object tokens over that on background tokens (eval mode)."""
    task.eval()
    patches = task.backbone.patch_embed.patchify(video)
    probs = task.masking.token_probs(task.backbone.patch_embed.embed_patches(patches))
    task.train()
    per_clip = torch.stack([p[o].mean() / p[~o].mean() for p, o in zip(probs, on_object)])
    return {"ratio": (probs[on_object].mean() / probs[~on_object].mean()).item(),
            "per_clip_median": per_clip.median().item(),
            "object_token_share": on_object.float().mean().item(),
            "object_probability_mass": (probs * on_object).sum(dim=1).mean().item()}


def focus(steps: int = 400, batch_size: int = 16, num_train: int = 512, num_eval: int = 64, dim: int = 64,
          depth: int = 2, heads: int = 2, decoder_dim: int = 64, decoder_depth: int = 2, mask_ratio: float = 0.95,
          sampling_weight: float = 1e-4, base_lr: float = 1.6e-2, seed: int = 0, picture: str | None = None,
          output: str | None = None) -> dict:
    """Train AdaMAE on moving-object clips and print the object / background probability ratio."""
    from datamodules.video.generated_object import moving_object_batch
    from vtrep.backbones import VideoViT
    from vtrep.decoders.mae_decoder import MAEDecoderConfig
    from vtrep.masking import AdaMAESampler
    from vtrep.tasks import VideoMAETask

    torch.manual_seed(seed)
    train, _ = moving_object_batch(num_train, seed=seed)
    video, masks = moving_object_batch(num_eval, seed=seed + 1000)
    backbone = VideoViT(img_size=32, num_frames=8, patch_size=4, tubelet_size=2, embed_dim=dim, depth=depth,
                        num_heads=heads)
    task = VideoMAETask(backbone, AdaMAESampler(mask_ratio, sampling_weight=sampling_weight, num_heads=heads),
                        MAEDecoderConfig(decoder_dim, decoder_depth, heads), batch_size_for_lr=batch_size,
                        num_viz_clips=0, export_encoder=False)
    on_object = object_tokens(masks, 4, 2)
    before = focus_ratio(task, video, on_object)
    optimizer, schedule = make_optimizer(task, batch_size, steps, base_lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = train[torch.randint(0, num_train, (batch_size,), generator=generator)]
        train_step(task, optimizer, schedule, batch)
    after = focus_ratio(task, video, on_object)
    print(f"{steps} steps, AdaMAE mask {mask_ratio}, lambda {sampling_weight}; object tokens are "
          f"{100 * after['object_token_share']:.1f}% of tokens")
    for name, r in (("before training", before), ("after training", after)):
        print(f"{name:>16}: p(object) / p(background) = {r['ratio']:.2f} (per-clip median "
              f"{r['per_clip_median']:.2f}); probability mass on object tokens {100 * r['object_probability_mass']:.1f}%")
    if picture:
        from vtrep.reports.mask_views import draw_masks
        from vtrep.reports.recon_grid import save_grid

        task.eval()
        print(f"wrote {save_grid(draw_masks(task, video[:4]), picture)}")
    results = {"steps": steps, "before": before, "after": after}
    if output:
        Path(output).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(focus, as_positional=False)
