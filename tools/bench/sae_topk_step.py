"""TopK SAE training-step throughput: dense reference path vs the sparse fast path.

    python tools/bench/sae_topk_step.py
    python tools/bench/sae_topk_step.py --rounds 3 --steps 2 --device cpu
    python tools/bench/sae_topk_step.py --dead_fraction 0.1   # AuxK active on 10% dead latents

One step is what :mod:`vtrep.tasks.sae` does per batch: ``loss``, ``backward``,
``remove_parallel_gradient``, Adam ``step``, ``normalise_decoder``. Two identical TopK SAEs (same
initialisation) differ only in ``sparse_path``; in each round both run ``steps`` steps on the same
batches, alternating which goes first, so drifts of the machine hit both. Reported: tokens/s of each
path (total tokens / total time over the rounds, after ``warmup`` untimed steps each) and the ratio
sparse / dense. Inputs are Gaussian (throughput does not depend on the data, except through AuxK).
"""

from __future__ import annotations

import time

import torch


def training_step(sae, optimizer, x: torch.Tensor, num_dead: int = 0) -> None:
    """One step as ``SAETask`` takes it, with the first ``num_dead`` latents held dead (the rest alive)."""
    if num_dead:
        with torch.no_grad():
            sae.tokens_since_fired.zero_()
            sae.tokens_since_fired[:num_dead] = 10 ** 15
    out = sae.loss(x)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    sae.remove_parallel_gradient()
    optimizer.step()
    sae.normalise_decoder()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(d: int = 768, expansion: int = 16, k: int = 32, batch_size: int = 4096, rounds: int = 10,
        steps: int = 5, warmup: int = 2, dead_fraction: float = 0.0, lr: float = 1e-4,
        device: str | None = None, seed: int = 0) -> dict:
    """Args:
        d: input width. expansion: latents per input dim (``K = expansion·d``). k: active latents.
        batch_size: inputs per step. rounds: interleaved timing rounds. steps: steps per path per round.
        warmup: untimed steps per path before timing. dead_fraction: fraction of latents marked dead
            before every step, the rest alive (so AuxK runs every step when > 0).
        lr: Adam learning rate. device: ``cuda`` if available unless given. seed: RNG seed.
    """
    from vtrep.sae import TopKSAE

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    latents = expansion * d
    torch.manual_seed(seed)
    models, optimizers = {}, {}
    base = TopKSAE(d, latents, k=k, sparse_path=False)
    for name, sparse in (("dense", False), ("sparse", True)):
        torch.manual_seed(seed)
        sae = TopKSAE(d, latents, k=k, sparse_path=sparse).to(dev)
        sae.load_state_dict(base.state_dict())
        models[name], optimizers[name] = sae.train(), torch.optim.Adam(sae.parameters(), lr=lr)
    num_dead = int(dead_fraction * latents)
    generator = torch.Generator(device=dev).manual_seed(seed)

    def batch() -> torch.Tensor:
        return torch.randn(batch_size, d, device=dev, generator=generator)

    def step(name: str, x: torch.Tensor) -> None:
        training_step(models[name], optimizers[name], x, num_dead)

    x = batch()
    for name in models:
        for _ in range(warmup):
            step(name, x)
    _sync(dev)
    seconds = {name: 0.0 for name in models}
    for r in range(rounds):
        xs = [batch() for _ in range(steps)]
        order = ("dense", "sparse") if r % 2 == 0 else ("sparse", "dense")
        for name in order:
            _sync(dev)
            start = time.perf_counter()
            for x in xs:
                step(name, x)
            _sync(dev)
            seconds[name] += time.perf_counter() - start
    tokens = rounds * steps * batch_size
    result = {name: tokens / s for name, s in seconds.items()}
    result["ratio"] = result["sparse"] / result["dense"]
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} threads), d={d}, K={latents}, k={k}, batch {batch_size}, fp32, "
          f"{rounds} rounds × {steps} steps, dead latents {num_dead}")
    print(f"dense : {result['dense']:,.0f} tokens/s")
    print(f"sparse: {result['sparse']:,.0f} tokens/s")
    print(f"ratio sparse/dense: {result['ratio']:.2f}×", flush=True)
    return result


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(run, as_positional=False)
