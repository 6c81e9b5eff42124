"""Attentive probing of frozen token features with V-JEPA / V-JEPA 2's protocol.

The probe reads the encoder's frozen tokens ``(B, N, D)`` (not a pooled vector) and learns where to
look. Its architecture follows V-JEPA 2's attentive classifier:

* one learnable query token ``(1, 1, D)``, initialised ``trunc_normal(std=0.02)``;
* ``self_attention_blocks`` pre-norm transformer blocks over the tokens (V-JEPA 2: ``depth - 1 = 3``;
  ``0`` gives V-JEPA 1's probe, a single cross-attention block);
* one cross-attention block: the query attends to the tokens. LayerNorm is applied to the tokens
  (keys and values) only, never to the query; there is no output projection after the attention;
  the residuals are ``q = q + attn(q, LN(tokens))`` then ``q = q + MLP(LN(q))``;
* a ``Linear`` head on the pooled query.

16 heads and MLP ratio 4 by default; heads must divide ``D``. Linears inside the pooler are
``trunc_normal(std=0.02)`` with zero bias, and the residual-output linears of block ``i`` (1-based)
are divided by ``sqrt(2 i)`` as in the reference; the head keeps PyTorch's default initialisation.

Training (:func:`fit_attentive_probe`) is V-JEPA 2's: AdamW (betas 0.9/0.999; no decay on biases
and other 1-D parameters), a per-step cosine from the peak rate to 0 without warmup, 20 epochs,
batch 256, and a grid lr ∈ {5e-3, 3e-3, 1e-3, 3e-4, 1e-4} × wd ∈ {0.01, 0.1, 0.4, 0.8} of 20 probes
trained together on the same batches (one summed loss, one backward: the probes share no
parameters, so each gets exactly its own gradient). V-JEPA 1's setting is ``lrs=(1e-3,)``,
``weight_decays=(0.01,)``, ``grad_clip=1.0``, ``self_attention_blocks=0``.

Deviations, and why:

* **Cached features, no augmentation.** V-JEPA trains the probe on freshly augmented clips pushed
  through the frozen encoder; here the tokens are extracted once and reused every epoch (the
  common cheap variant, as for :mod:`vtrep.probes.linear_probe`).
* **Model selection on a held-out part of the training set.** V-JEPA 2 reports the best of its 20
  probes on its validation set, which is the test set: an optimistic number. Here a seeded random
  ``holdout_fraction`` of the training clips is set aside, the grid is trained on the rest, the
  probe with the best held-out top-1 is chosen (ties: the first in grid order), and only that
  probe is scored on ``eval_tokens``. It is not refitted on the full training set. With a grid of
  one (lr, wd) nothing is held out and the probe trains on every training clip.
* **Multi-view.** V-JEPA concatenates the tokens of a video's clips into one sequence per spatial
  view and averages the views' softmaxes at test time (:func:`predict_views`); while training it
  averages the per-view losses. :func:`fit_attentive_probe` takes one tensor, so training views are
  passed as extra samples (concatenate the views along the batch and repeat the labels), which
  weights them the same way.
* fp32 throughout (V-JEPA trains the probe under bf16 autocast); no weight-decay schedule (V-JEPA
  2's configs keep it constant).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vtrep.checks import fraction, non_negative, non_negative_int, positive, positive_int
from vtrep.optim.schedule import WarmupCosine
from vtrep.probes.linear_probe import ProbeResult

VJEPA2_LRS = (5e-3, 3e-3, 1e-3, 3e-4, 1e-4)
VJEPA2_WEIGHT_DECAYS = (0.01, 0.1, 0.4, 0.8)


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, N, D) -> (B, heads, N, D / heads)``."""
    return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, N, D / heads) -> (B, N, D)``."""
    return x.transpose(1, 2).flatten(2)


def _mlp(dim: int, mlp_ratio: float) -> nn.Sequential:
    hidden = int(dim * mlp_ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))``; ``(B, N, D) -> (B, N, D)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_split_heads(t, self.num_heads) for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        x = x + self.proj(_merge_heads(F.scaled_dot_product_attention(q, k, v)))
        return x + self.mlp(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """The query attends to the tokens: ``(B, Q, D), (B, N, D) -> (B, Q, D)``.

    LayerNorm on the tokens (keys and values) only, none on the query, no output projection.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm_tokens = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio)

    def attend(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The attention residual branch: multi-head attention of the raw query over ``LN(tokens)``."""
        q = _split_heads(self.q(query), self.num_heads)
        k, v = (_split_heads(t, self.num_heads) for t in self.kv(self.norm_tokens(tokens)).chunk(2, dim=-1))
        return _merge_heads(F.scaled_dot_product_attention(q, k, v))

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        query = query + self.attend(query, tokens)
        return query + self.mlp(self.norm_mlp(query))


class AttentiveProbe(nn.Module):
    """V-JEPA 2's attentive classifier on frozen tokens: ``(B, N, D) -> logits (B, classes)``."""

    def __init__(self, dim: int, num_classes: int, num_heads: int = 16, self_attention_blocks: int = 3,
                 mlp_ratio: float = 4.0, init_std: float = 0.02) -> None:
        super().__init__()
        positive_int("dim", dim)
        positive_int("num_classes", num_classes)
        positive_int("num_heads", num_heads)
        non_negative_int("self_attention_blocks", self_attention_blocks)
        positive("mlp_ratio", mlp_ratio)
        positive("init_std", init_std)
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the token width dim={dim} "
                             f"(each head gets dim / num_heads channels)")
        if int(dim * mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio={mlp_ratio} gives an empty MLP for dim={dim}")
        self.dim, self.num_classes = dim, num_classes
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, num_heads, mlp_ratio)
                                    for _ in range(self_attention_blocks))
        self.cross = CrossAttentionBlock(dim, num_heads, mlp_ratio)
        self.head = nn.Linear(dim, num_classes)
        self._init_pooler(init_std)

    def _init_pooler(self, std: float) -> None:
        nn.init.trunc_normal_(self.query, std=std)
        for module in [*self.blocks, self.cross]:
            for m in module.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=std)
                    nn.init.zeros_(m.bias)
        with torch.no_grad():  # residual outputs of block i shrink by sqrt(2 i), as in the reference
            for i, block in enumerate(self.blocks, start=1):
                block.proj.weight.div_(math.sqrt(2 * i))
                block.mlp[2].weight.div_(math.sqrt(2 * i))
            self.cross.mlp[2].weight.div_(math.sqrt(2 * max(1, len(self.blocks))))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[-1] != self.dim:
            raise ValueError(f"tokens must be (B, N, D={self.dim}), got shape {tuple(tokens.shape)}")
        for block in self.blocks:
            tokens = block(tokens)
        query = self.cross(self.query.expand(tokens.shape[0], -1, -1), tokens)
        return self.head(query[:, 0])


@dataclass
class AttentiveProbeResult(ProbeResult):
    """``top1`` on the eval set of the chosen probe; ``train_top1`` on the clips it was trained on."""

    lr: float
    weight_decay: float
    holdout_top1: float | None  # None when a single (lr, wd) was given and nothing was held out
    num_holdout: int
    grid: tuple[tuple[float, float, float | None], ...]  # (lr, wd, held-out top-1) of every probe
    probe: AttentiveProbe = field(repr=False, compare=False)


def _check_split(name: str, tokens: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if tokens.ndim != 3:
        raise ValueError(f"{name}_tokens must be (B, N, D), got shape {tuple(tokens.shape)}")
    if not tokens.is_floating_point():
        raise ValueError(f"{name}_tokens must be floating point, got {tokens.dtype}")
    if labels.ndim != 1 or labels.shape[0] != tokens.shape[0]:
        raise ValueError(f"{name}_y must be ({tokens.shape[0]},) to match {name}_tokens, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"{name}_y must be integer class indices, got {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name}_y must be in [0, num_classes={num_classes}), "
                         f"got values in [{labels.min().item()}, {labels.max().item()}]")


def _check_inputs(train_tokens, train_y, eval_tokens, eval_y, num_classes, lrs, weight_decays) -> None:
    positive_int("num_classes", num_classes)
    _check_split("train", train_tokens, train_y, num_classes)
    _check_split("eval", eval_tokens, eval_y, num_classes)
    if train_tokens.shape[-1] != eval_tokens.shape[-1]:
        raise ValueError(f"train and eval tokens must have the same width D, got {train_tokens.shape[-1]} "
                         f"and {eval_tokens.shape[-1]}")
    if not lrs or not weight_decays:
        raise ValueError(f"lrs and weight_decays must be non-empty, got {tuple(lrs)} and {tuple(weight_decays)}")
    for lr in lrs:
        positive("lr", lr)
    for wd in weight_decays:
        non_negative("weight decay", wd)


def _param_groups(probe: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """V-JEPA's groups: decay on matrices (and the query token), none on biases and other 1-D parameters."""
    decay = [p for p in probe.parameters() if p.ndim > 1]
    no_decay = [p for p in probe.parameters() if p.ndim <= 1]
    return [{"params": decay, "lr": lr, "weight_decay": weight_decay},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0}]


def _train(probes: nn.ModuleList, settings: list[tuple[float, float]], tokens: torch.Tensor, labels: torch.Tensor,
           epochs: int, batch_size: int, grad_clip: float | None, generator: torch.Generator,
           device: torch.device) -> None:
    """Train every probe on the same shuffled batches; no host synchronisation inside the loop."""
    groups = [g for probe, (lr, wd) in zip(probes, settings) for g in _param_groups(probe, lr, wd)]
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), fused=device.type in ("cpu", "cuda"))
    steps_per_epoch = tokens.shape[0] // batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(epochs * steps_per_epoch, 0))
    probes.train()
    for _ in range(epochs):
        order = torch.randperm(tokens.shape[0], generator=generator)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size].to(tokens.device)
            x = tokens[idx].to(device, torch.float32, non_blocking=True)
            y = labels[idx].to(device, non_blocking=True)
            loss = sum(F.cross_entropy(probe(x), y) for probe in probes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                for probe in probes:
                    nn.utils.clip_grad_norm_(probe.parameters(), grad_clip, foreach=True)
            optimizer.step()
            scheduler.step()


@torch.no_grad()
def _accuracies(probes: Sequence[nn.Module], tokens: torch.Tensor, labels: torch.Tensor, batch_size: int,
                device: torch.device) -> list[float]:
    """Top-1 of each probe on ``tokens (n, N, D)``, scored in batches; one host sync at the end."""
    if tokens.shape[0] == 0:
        return [float("nan")] * len(probes)
    for probe in probes:
        probe.eval()
    correct = torch.zeros(len(probes), device=device)
    for start in range(0, tokens.shape[0], batch_size):
        x = tokens[start:start + batch_size].to(device, torch.float32, non_blocking=True)
        y = labels[start:start + batch_size].to(device, non_blocking=True)
        correct += torch.stack([(probe(x).argmax(dim=1) == y).sum() for probe in probes])
    return (correct / tokens.shape[0]).tolist()


def _holdout_split(n: int, holdout_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    held = max(1, round(holdout_fraction * n))
    if n - held < 1:
        raise ValueError(f"need at least 2 training clips to hold some out for choosing (lr, wd), got {n}")
    order = torch.randperm(n, generator=generator)
    return order[held:], order[:held]


def fit_attentive_probe(train_tokens: torch.Tensor, train_y: torch.Tensor, eval_tokens: torch.Tensor,
                        eval_y: torch.Tensor, num_classes: int, epochs: int = 20, batch_size: int = 256,
                        lrs: Sequence[float] = VJEPA2_LRS, weight_decays: Sequence[float] = VJEPA2_WEIGHT_DECAYS,
                        seed: int = 0, num_heads: int = 16, self_attention_blocks: int = 3,
                        mlp_ratio: float = 4.0, holdout_fraction: float = 0.1, grad_clip: float | None = None,
                        device: str | torch.device | None = None) -> AttentiveProbeResult:
    """Train the lr × wd grid of attentive probes on ``train_tokens (n, N, D)``; score the best on ``eval_tokens``.

    With more than one (lr, wd), the best is chosen by top-1 on a held-out ``holdout_fraction`` of the
    training clips (never on the eval set; see the module docstring). Tokens may stay on the CPU while
    the probes train on ``device`` (default: the tokens' device). Same seed, same inputs → same result.
    """
    _check_inputs(train_tokens, train_y, eval_tokens, eval_y, num_classes, lrs, weight_decays)
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    fraction("holdout_fraction", holdout_fraction)
    if grad_clip is not None:
        positive("grad_clip", grad_clip)
    device = torch.device(device) if device is not None else train_tokens.device
    settings = [(float(lr), float(wd)) for lr in lrs for wd in weight_decays]
    generator = torch.Generator().manual_seed(seed)
    n = train_tokens.shape[0]
    if len(settings) > 1:
        fit_idx, held_idx = _holdout_split(n, holdout_fraction, generator)
    else:
        fit_idx, held_idx = torch.arange(n), torch.arange(0)
    if fit_idx.numel() < 1:
        raise ValueError("need at least 1 training clip")
    fit_x, fit_y = train_tokens[fit_idx.to(train_tokens.device)], train_y[fit_idx.to(train_y.device)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probes = nn.ModuleList(AttentiveProbe(train_tokens.shape[-1], num_classes, num_heads,
                                              self_attention_blocks, mlp_ratio) for _ in settings).to(device)
    _train(probes, settings, fit_x, fit_y, epochs, min(batch_size, fit_x.shape[0]), grad_clip, generator, device)
    if len(settings) > 1:
        held = _accuracies(probes, train_tokens[held_idx.to(train_tokens.device)],
                           train_y[held_idx.to(train_y.device)], batch_size, device)
        best = max(range(len(settings)), key=lambda i: (held[i], -i))
    else:
        held, best = [None], 0
    probe = probes[best]
    (lr, wd) = settings[best]
    return AttentiveProbeResult(
        top1=_accuracies([probe], eval_tokens, eval_y, batch_size, device)[0],
        train_top1=_accuracies([probe], fit_x, fit_y, batch_size, device)[0],
        num_train=fit_x.shape[0], num_eval=eval_tokens.shape[0], lr=lr, weight_decay=wd, holdout_top1=held[best],
        num_holdout=held_idx.numel(), grid=tuple((lr_, wd_, h) for (lr_, wd_), h in zip(settings, held)),
        probe=probe)


@torch.no_grad()
def predict_views(probe: nn.Module | Callable[[torch.Tensor], torch.Tensor],
                  views: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multi-view prediction: the mean over views of ``softmax(probe(view))`` → probabilities ``(B, classes)``.

    For the attentive probe each view is ``(B, N, D)``: the tokens of a video's clips concatenated into
    one sequence per spatial view (``torch.cat(clip_tokens, dim=1)``), as in V-JEPA. Any probe that maps
    one view to logits works, e.g. :class:`~vtrep.probes.linear_probe.LinearProbe` on pooled ``(B, D)``
    views (:func:`predict_pooled_views`), or a function giving log-probabilities (softmax returns them
    to the probabilities; ``vtrep probe``'s logistic and k-NN test views).
    """
    if len(views) == 0:
        raise ValueError("views must hold at least one view")
    batch = views[0].shape[0]
    if any(v.shape[0] != batch for v in views):
        raise ValueError(f"every view must have the same batch size, got {[v.shape[0] for v in views]}")
    if isinstance(probe, nn.Module):
        probe.eval()
    return torch.stack([probe(v).float().softmax(dim=-1) for v in views]).mean(dim=0)


def predict_pooled_views(probe: nn.Module, views: Sequence[torch.Tensor]) -> torch.Tensor:
    """:func:`predict_views` for a pooled-feature probe (e.g. ``LinearProbe``): views ``(B, D)`` each."""
    if any(v.ndim != 2 for v in views):
        raise ValueError(f"pooled views must be (B, D), got shapes {[tuple(v.shape) for v in views]}")
    return predict_views(probe, views)
