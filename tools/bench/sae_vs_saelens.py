"""vtrep's TopK SAE vs SAELens's (``sae-lens``): training-step throughput and planted-dictionary recovery.

    python tools/bench/sae_vs_saelens.py 2>&1 | tee runs/sae_vs_saelens.txt    # both parts
    python tools/bench/sae_vs_saelens.py --part speed --rounds 6 --dead_fraction 0.1
    python tools/bench/sae_vs_saelens.py --part speed --variants [vtrep,vtrep_dense,saelens] --profile true
    python tools/bench/sae_vs_saelens.py --part planted --planted_steps 3000

Needs ``sae-lens`` importable (``tools/setup_saelens.sh``); without it the speed part stops with a
message and the planted part reports vtrep's TopK alone.

**Part 1 — speed.** TopK SAEs at ``d`` = 768, ``K`` = 16·768, ``k`` = 32, batch 4096, fp32, on the
same device and the same ``torch.set_num_threads(threads)`` (default 2), fed the *same* batches of
planted activations (``datamodules.features.planted``, ``4·d`` atoms, ``k`` active, Zipf 0.5).
Each variant does one full training step as its own library's trainer does it:

- ``vtrep`` — :class:`vtrep.sae.TopKSAE` with its defaults (sparse fast path on since ``K ≥ 8k``;
  AuxK with ``aux_k = d/2``, coefficient 1/32, residual FVU), input scale fitted
  (``fit_input_scale``, ``E‖x/s‖² = d``) and ``b_dec`` at the geometric median, then what
  :mod:`vtrep.tasks.sae` does per batch: ``loss`` → ``zero_grad`` → ``backward`` →
  ``remove_parallel_gradient`` → Adam ``step`` → ``normalise_decoder``.
- ``vtrep_dense`` — the same with ``sparse_path=False`` (vtrep's dense reference path).
- ``saelens`` — ``sae_lens.TopKTrainingSAE`` with SAELens's *default* training config
  (``rescale_acts_by_decoder_norm=True``, ``decoder_init_norm=0.1``, ``aux_loss_coefficient=1``,
  ``use_sparse_activations=False``) and ``normalize_activations="expected_average_only_in"``
  (SAELens's equivalent of vtrep's input scaling; scaling factor estimated once beforehand), stepped
  by SAELens's own ``SAETrainer.step`` (activation scaling, ``training_forward_pass`` with its AuxK —
  ``k_aux = d/2``, summed-square residual MSE scaled by ``min(dead/k_aux, 1)`` —, firing statistics,
  ``backward``, ``clip_grad_norm_(1.0)``, Adam ``step``, ``zero_grad``, LR-scheduler step; SAELens
  keeps no unit-norm decoder, so it has no normalise / parallel-gradient step to time).
- ``saelens_sparse`` — the same with ``use_sparse_activations=True``, SAELens's documented faster
  option for fp32 without autocast (sparse COO codes, ``torch.sparse.mm`` decode). It needs
  ``rescale_acts_by_decoder_norm=False``: with the default ``True`` its backward fails on CPU
  (``aten::view`` has no SparseCPU kernel), so this variant is the best SAELens TopK step on CPU.

``dead_fraction`` marks that fraction of latents dead before every step in every variant (vtrep's
``tokens_since_fired``, SAELens's trainer ``n_forward_passes_since_fired``; the rest alive), so AuxK
runs each step when it is > 0 (both pick the top ``d/2`` dead pre-activations). After ``warmup``
untimed steps each, ``rounds`` rounds time one step of every variant, the order rotating each round
(A,B,C / B,C,A / ...), all on the round's batch. Reported: the median over rounds of each variant's
tokens/s and the ratios of vtrep's median to each other's. ``profile`` then runs ``torch.profiler``
over ``profile_steps`` vtrep steps (phases labelled) and prints where the time goes.

**Part 2 — planted dictionary.** vtrep's row is ``tools/bench/sae_planted.py``'s ``topk`` run: one
``vtrep fit`` of ``vtrep.tasks.SAETask`` on ``datamodules.PlantedDataModule`` (3000 steps of 1024, lr
1e-3, 512 latents, ``k`` = 8, ``dead_after`` = 50·batch tokens), evaluated from the SAE that fit exported;
it is read back from the same output folder (``planted_output``, ``sae_planted.py``'s default) when that
fit has already run, so both tools report the same vtrep fit. Its ``train_s`` is the whole fit process's
wall time (start-up included). SAELens's ``TopKTrainingSAE`` (defaults as above) trains with its own
``SAETrainer.fit`` on the fit's data (rebuilt from the fit's ``config.yaml``) and on the same batch
sequence vtrep's fit sees (the datamodule's epoch shuffle: ``EpochShuffle(seed)``, ``set_epoch(e)`` per
epoch, short last batch dropped), its scaling factor estimated on that sequence's first batch (the batch
``SAETask`` fits vtrep's input scale on), with its default ``dead_feature_window`` (1000 steps) and with
50 steps (= vtrep's ``dead_after``). Both are evaluated by the same code on the fit's 10k held-out rows
(after SAELens folds its scaling factor in): recovery (mean over true atoms of the best cosine with a
decoder row, :func:`vtrep.sae.dictionary_recovery`), L0, FVU, dead fraction (never fired on the held-out
set), via :class:`vtrep.sae.SAEMetrics`. TopK's ``k`` fixes L0 ≤ 8, so FVU is at matched L0. Part 2 runs
SAELens with ``planted_threads`` (default 1) threads; the vtrep fit takes ``VTREP_NUM_THREADS``.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Literal

os.environ.setdefault("TQDM_DISABLE", "1")  # SAELens's progress bars (read when torch first imports tqdm)

import torch  # noqa: E402

warnings.filterwarnings("ignore", message="Sparse invariant checks")  # SAELens's sparse COO codes

SPEED_VARIANTS = ("vtrep", "vtrep_dense", "saelens", "saelens_sparse")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _import_saelens():
    """``sae_lens`` or ``None``."""
    try:
        import sae_lens
    except ImportError:
        return None
    return sae_lens


def _saelens_trainer(sae, batch_size: int, lr: float, total_samples: int, dead_window: int, device: str,
                     scale_sample: torch.Tensor):
    """SAELens's ``SAETrainer`` for ``sae`` with its scaling factor estimated on ``scale_sample``."""
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    # lr_end as LanguageModelSAERunnerConfig fills it in (SAETrainer asserts it is set)
    cfg = SAETrainerConfig(total_training_samples=total_samples, train_batch_size_samples=batch_size, lr=lr,
                           lr_end=lr / 10, device=device, dead_feature_window=dead_window)
    trainer = SAETrainer(cfg, sae, data_provider=iter(()))
    trainer.activation_scaler.estimate_scaling_factor(sae.cfg.d_in, iter([scale_sample]), 1)
    return trainer


def _saelens_topk(d: int, latents: int, k: int, device: str, sparse: bool = False, seed: int = 0):
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

    torch.manual_seed(seed)
    extra = {"use_sparse_activations": True, "rescale_acts_by_decoder_norm": False} if sparse else {}
    cfg = TopKTrainingSAEConfig(d_in=d, d_sae=latents, k=k, device=device,
                                normalize_activations="expected_average_only_in", **extra)
    return TopKTrainingSAE(cfg).to(device)


# -- part 1: step throughput -------------------------------------------------------------------------
def _steppers(variants, d, latents, k, batch_size, lr, device, seed, first, num_dead, training_step):
    """One ``step(x)`` per variant, each from the same seed and first batch; and the vtrep models by name."""
    from vtrep.sae import TopKSAE

    steppers, vtrep_models = {}, {}
    for name in variants:
        if name.startswith("vtrep"):
            torch.manual_seed(seed)
            sae = TopKSAE(d, latents, k=k, sparse_path=False if name == "vtrep_dense" else None).to(device)
            sae.fit_input_scale(first)
            sae.init_decoder_bias(first)
            sae.train()
            optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
            vtrep_models[name] = (sae, optimizer)

            def step(x, sae=sae, optimizer=optimizer):
                training_step(sae, optimizer, x, num_dead)
        else:
            sae = _saelens_topk(d, latents, k, device.type, sparse=name == "saelens_sparse", seed=seed)
            trainer = _saelens_trainer(sae, batch_size, lr, 10 ** 12, 1000, device.type, first)

            def step(x, trainer=trainer):
                if num_dead:
                    with torch.no_grad():
                        trainer.n_forward_passes_since_fired.zero_()
                        trainer.n_forward_passes_since_fired[:num_dead] = trainer.cfg.dead_feature_window + 1
                trainer.step(x)
                trainer.n_training_steps += 1  # as SAETrainer.fit does after each step
        steppers[name] = step
    return steppers, vtrep_models


def speed(variants: list[str], d: int, expansion: int, k: int, batch_size: int, rounds: int, warmup: int,
          dead_fraction: float, lr: float, device: torch.device, seed: int, profile: bool,
          profile_steps: int) -> dict:
    from datamodules.features.planted import planted_activations

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sae_topk_step import training_step

    unknown = sorted(set(variants) - set(SPEED_VARIANTS))
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {SPEED_VARIANTS}, got {variants}")
    if any(v.startswith("saelens") for v in variants) and _import_saelens() is None:
        print("speed: sae-lens is not installed (tools/setup_saelens.sh); nothing to compare against", flush=True)
        return {}
    latents = expansion * d
    pool = 2  # distinct batches, cycled over the rounds
    x_all, _ = planted_activations(pool * batch_size, d, 4 * d, k, zipf=0.5, seed=seed)
    batches = [b.to(device) for b in x_all.split(batch_size)]
    num_dead = int(dead_fraction * latents)
    steppers, vtrep_models = _steppers(variants, d, latents, k, batch_size, lr, device, seed, batches[0], num_dead,
                                       training_step)
    for name, step in steppers.items():
        for i in range(warmup):
            step(batches[i % pool])
    _sync(device)
    rates = {name: [] for name in steppers}
    names = list(steppers)
    for r in range(rounds):
        x = batches[r % pool]
        for name in names[r % len(names):] + names[:r % len(names)]:
            _sync(device)
            start = time.perf_counter()
            steppers[name](x)
            _sync(device)
            rates[name].append(batch_size / (time.perf_counter() - start))
    result = {name: statistics.median(r) for name, r in rates.items()}
    print(f"== speed: device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} threads), d={d}, K={latents}, k={k}, batch {batch_size}, fp32, "
          f"{rounds} interleaved rounds after {warmup} warm-up steps each, dead latents {num_dead}", flush=True)
    for name in names:
        spread = f"[{min(rates[name]):,.0f} .. {max(rates[name]):,.0f}]"
        print(f"{name:>15}: median {result[name]:>8,.0f} tokens/s  (min..max {spread}; "
              f"median step {batch_size / result[name]:.2f} s)")
    if "vtrep" in result:
        for name in names:
            if name != "vtrep":
                result[f"vtrep/{name}"] = result["vtrep"] / result[name]
                print(f"ratio vtrep/{name}: {result[f'vtrep/{name}']:.2f}x")
    sys.stdout.flush()
    if profile:
        _profile(vtrep_models, batches, profile_steps)
    return result


def _profile(vtrep_models: dict, batches: list[torch.Tensor], steps: int) -> None:
    """torch.profiler over ``steps`` steps of vtrep's (sparse-path) step, with its phases labelled."""
    from torch.profiler import ProfilerActivity, profile, record_function

    if "vtrep" not in vtrep_models:
        print("profile: needs the 'vtrep' variant")
        return
    sae, optimizer = vtrep_models["vtrep"]

    def labelled(x):
        with record_function("## loss (forward)"):
            out = sae.loss(x)
        optimizer.zero_grad(set_to_none=True)
        with record_function("## backward"):
            out.loss.backward()
        with record_function("## remove_parallel_gradient"):
            sae.remove_parallel_gradient()
        with record_function("## adam step"):
            optimizer.step()
        with record_function("## normalise_decoder"):
            sae.normalise_decoder()

    labelled(batches[0])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            labelled(batches[i % len(batches)])
    print(f"== profile of vtrep's step ({steps} steps; times are totals over them)")
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=40, max_name_column_width=60)
    print(table, flush=True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60),
          flush=True)


# -- part 2: planted dictionary ---------------------------------------------------------------------
def _evaluate(encode, decode, decoder: torch.Tensor, test_x: torch.Tensor, atoms: torch.Tensor,
              latents: int) -> dict:
    from vtrep.sae import SAEMetrics, dictionary_recovery

    metrics = SAEMetrics(latents)
    with torch.no_grad():
        codes = encode(test_x)
        metrics.update(test_x, decode(codes), codes)
    return {**metrics.compute(), "recovery": dictionary_recovery(decoder.detach(), atoms)}


def _fit_batches(train_x: torch.Tensor, batch_size: int, seed: int):
    """The batches a one-process ``vtrep fit`` of PlantedDataModule sees, in order (its epoch shuffle)."""
    from datamodules.common.epoch_shuffle import EpochShuffle

    sampler = EpochShuffle(train_x, seed=seed)
    for epoch in itertools.count():
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield train_x[order[start:start + batch_size]]


def planted(steps: int, batch_size: int, lr: float, seed: int, dead_windows: list[int], output: str) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sae_planted

    from vtrep.benchmark.runner import Run, run_folder
    from vtrep.eval.encoders import load_task

    # the sizes of sae_planted.run's defaults: d 64, 256 atoms, 8 active, 512 latents, Zipf 0.5
    d, num_atoms, active, latents = 64, 256, 8, 512
    print(f"== planted: d={d}, {num_atoms} atoms, {active} active, {latents} latents, k={active}, "
          f"{steps} steps × batch {batch_size}, Adam lr {lr}, {torch.get_num_threads()} threads (SAELens)", flush=True)
    results = {}

    def report(name, row):
        results[name] = row
        print(f"{name:>30}: recovery {row['recovery']:.3f}, L0 {row['l0']:.1f}, FVU {row['fvu']:.3f}, "
              f"dead {100 * row['dead_fraction']:.1f}%, {row['train_s']:.0f} s", flush=True)

    ours = sae_planted.run(["topk"], steps, batch_size, d, num_atoms, active, latents, lr, seed, output=output,
                           summary=False)["topk"]
    report("vtrep topk (vtrep fit)", {**{k: ours[k] for k in ("recovery", "l0", "fvu", "dead_fraction")},
                                      "train_s": ours["fit_seconds"]})
    if _import_saelens() is None:
        print("planted: sae-lens is not installed (tools/setup_saelens.sh); SAELens rows skipped", flush=True)
        return results
    fit_folder = run_folder(Path(output), Run(dataset="topk", seed=seed, fit_config="")) / "fit"
    _, data = load_task(str(fit_folder / "config.yaml"))  # the data vtrep's fit trained and was evaluated on
    train_x, test_x, atoms = data.train_set.x, data.val_set.x, data.atoms
    for window in dead_windows:
        theirs = _saelens_topk(d, latents, active, "cpu", seed=seed)
        first = next(_fit_batches(train_x, batch_size, seed))
        trainer = _saelens_trainer(theirs, batch_size, lr, steps * batch_size, window, "cpu", first)
        trainer.data_provider = _fit_batches(train_x, batch_size, seed)
        start = time.perf_counter()
        theirs = trainer.fit()  # folds the scaling factor in at the end: takes raw inputs
        seconds = time.perf_counter() - start
        theirs.eval()
        report(f"saelens topk (dead window {window})",
               {**_evaluate(theirs.encode, theirs.decode, theirs.W_dec, test_x, atoms, latents),
                "train_s": seconds})
    return results


def run(part: Literal["both", "speed", "planted"] = "both", variants: list[str] = ["vtrep", "saelens", "saelens_sparse"],
        d: int = 768, expansion: int = 16, k: int = 32, batch_size: int = 4096, rounds: int = 8, warmup: int = 1,
        dead_fraction: float = 0.0, lr: float = 1e-4, threads: int = 2, device: str = "cpu", profile: bool = False,
        profile_steps: int = 2, planted_steps: int = 3000, planted_batch_size: int = 1024, planted_lr: float = 1e-3,
        planted_threads: int = 1, dead_windows: list[int] = [1000, 50], seed: int = 0,
        planted_output: str = "runs/benchmark/sae_planted") -> dict:
    """Args:
        part: which part to run. variants: speed variants (of ``vtrep``, ``vtrep_dense``, ``saelens``,
            ``saelens_sparse``). d, expansion, k, batch_size: speed sizes (``K = expansion·d``).
        rounds: interleaved timing rounds (one step of each variant per round). warmup: untimed steps
            per variant first. dead_fraction: latents kept dead before every step (AuxK active if > 0).
        lr: Adam lr of the speed part. threads: ``torch.set_num_threads`` for part 1.
        device: ``cpu`` (or ``cuda``). profile: torch.profiler table of vtrep's step after the timing.
        profile_steps: steps profiled. planted_steps, planted_batch_size, planted_lr: part 2's training
            (those of ``sae_planted.py``). planted_threads: ``torch.set_num_threads`` for part 2 (its
            ops are tiny, d 64: on a loaded 2-core machine a second thread only adds waiting). dead_windows: SAELens ``dead_feature_window`` values (steps)
            for part 2. seed: RNG seed. planted_output: ``sae_planted.py``'s output folder, where
            vtrep's fit for part 2 runs or is read back.
    """
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, sae-lens {getattr(_import_saelens(), '__version__', 'not installed')}",
          flush=True)
    out = {}
    if part in ("both", "speed"):
        out["speed"] = speed(variants, d, expansion, k, batch_size, rounds, warmup, dead_fraction, lr,
                             torch.device(device), seed, profile, profile_steps)
    if part in ("both", "planted"):
        torch.set_num_threads(planted_threads)
        out["planted"] = planted(planted_steps, planted_batch_size, planted_lr, seed, dead_windows, planted_output)
    return out


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(run, as_positional=False)
