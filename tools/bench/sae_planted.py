"""Planted-dictionary benchmark: how well each SAE variant recovers a known sparse dictionary.

    VTREP_NUM_THREADS=1 python tools/bench/sae_planted.py
    python tools/bench/sae_planted.py --variants [topk,batchtopk] --steps 1000 --output runs/benchmark/planted_1k

Activations are ``x = c·A`` with ``A`` 256 random unit atoms in d = 64 and 8 active atoms per
sample (magnitudes uniform in [0.5, 1.5], Zipf-like atom frequencies; ``datamodules.PlantedDataModule``,
60 000 rows, the last 1/6 = 10 000 held out). Each variant (512 latents, 2× the atoms) is trained by the
product: one ``vtrep fit`` process per variant (:mod:`vtrep.benchmark.runner`) with
``vtrep.tasks.SAETask(lr=1e-3)`` for ``steps`` steps of ``batch_size`` rows. The probe loads the SAE
the fit exported (``<fit folder>/sae``, :func:`vtrep.sae.io.load_sae`) and reports, on the held-out
rows of the fit's own datamodule (rebuilt from its ``config.yaml``): recovery (mean over true atoms of
the best cosine with a decoder row, :func:`vtrep.sae.dictionary_recovery`), L0, FVU and dead latents
(:class:`vtrep.sae.SAEMetrics`). TopK-style variants use k = 8 (the true L0); the penalty variants'
coefficients are set so their L0 lands near 8 (printed, so FVU is compared at matched L0 only
approximately). ``fit_s`` is the wall time of the whole ``vtrep fit`` process (start-up included).

Output (``output``): ``configs/<variant>_seed<s>.yaml`` (each fit's config: part of the result), the
runner's ``<variant>/seed_<s>/`` folders (``fit/`` with the CSV log, ``config.yaml`` and ``sae/``;
``result.json``), ``results.json`` and ``summary.md`` (the table printed at the end). A rerun resumes:
finished variants are read back, never refitted; one made with other settings is refused.

What differs from the training loop this tool had before (the product's choices, not the benchmark's):
``SAETask`` fits the input scale and sets ``b_dec`` (geometric median, ``normalise_input``) from its
first training batch of 1024 rows rather than from the first 4096 rows, and the archetypal SAE's 1024
k-means candidates come from that batch too (so they are its rows); batches follow the datamodule's
epoch shuffle (each row once per epoch, the last short batch dropped) rather than sampling rows with
replacement; the SAE is initialised after ``seed_everything(seed)`` inside the fit process.
"""

from __future__ import annotations

import time
from pathlib import Path

VARIANTS = ("topk", "batchtopk", "matryoshka", "abstopk", "archetypal", "jumprelu", "relu_l1")
LABELS = {"topk": "TopK (k {k})", "batchtopk": "BatchTopK (k {k})", "matryoshka": "Matryoshka (k {k})",
          "abstopk": "AbsTopK (k {k})", "archetypal": "Archetypal (k {k}, 1024 candidates, δ 1)",
          "jumprelu": "JumpReLU (θ₀ 0.5, ε 0.05, λ 1e-2)", "relu_l1": "ReLU-L1 (λ 0.05)"}
DEFAULT_OUTPUT = "runs/benchmark/sae_planted"


def sae_config(name: str, d: int, latents: int, k: int, dead_after: int) -> dict:
    """The variant as a fit config's ``model.init_args.sae`` entry (``class_path`` + ``init_args``)."""
    size = {"d_in": d, "num_latents": latents}
    settings = {
        "topk": ("TopKSAE", {"k": k, "dead_after_tokens": dead_after}),
        "batchtopk": ("BatchTopKSAE", {"k": k, "dead_after_tokens": dead_after}),
        "matryoshka": ("MatryoshkaSAE", {"k": k, "dead_after_tokens": dead_after}),
        "abstopk": ("AbsTopKSAE", {"k": k}),
        # candidates: k-means on SAETask's first training batch (init_from_data)
        "archetypal": ("ArchetypalSAE", {"k": k, "dead_after_tokens": dead_after}),
        "jumprelu": ("JumpReLUSAE", {"threshold_init": 0.5, "bandwidth": 0.05, "l0_coef": 1e-2}),
        "relu_l1": ("ReLUL1SAE", {"l1_coef": 0.05}),
    }
    if name not in settings:
        raise ValueError(f"unknown variant {name!r}; choose from {sorted(settings)}")
    class_name, init_args = settings[name]
    return {"class_path": f"vtrep.sae.{class_name}", "init_args": {**size, **init_args}}


def fit_config(name: str, steps: int, batch_size: int, d: int, num_atoms: int, active: int, latents: int,
               lr: float, seed: int, num_samples: int = 60_000, val_fraction: float = 1 / 6) -> dict:
    """The ``vtrep fit`` config of one variant: SAETask on PlantedDataModule (``sae_fit_config``)."""
    from vtrep.benchmark.runner import sae_fit_config

    sae = sae_config(name, d, latents, active, dead_after=50 * batch_size)
    data = {"num_samples": num_samples, "d": d, "num_atoms": num_atoms, "active": active, "zipf": 0.5,
            "seed": seed, "batch_size": batch_size, "val_fraction": val_fraction}
    return sae_fit_config(seed, steps, sae, lr, "PlantedDataModule", data)


def evaluate_export(fit_folder: Path) -> dict:
    """Recovery and SAEMetrics of the SAE a fit exported, on its datamodule's held-out rows and atoms."""
    import torch

    from vtrep.eval.encoders import load_task
    from vtrep.sae import SAEMetrics, dictionary_recovery
    from vtrep.sae.io import load_sae

    _, data = load_task(str(fit_folder / "config.yaml"))  # the datamodule the fit trained on
    sae = load_sae(fit_folder / "sae")
    metrics = SAEMetrics(sae.num_latents)
    with torch.no_grad():
        codes = sae.encode(data.val_set.x)
        metrics.update(data.val_set.x, sae.decode(codes), codes)
    return {**metrics.compute(), "recovery": dictionary_recovery(sae.W_dec.detach(), data.atoms),
            "num_test": len(data.val_set)}


def probe(run, fit_folder: Path) -> dict:
    """The runner's probe: :func:`evaluate_export` of the fit, as plain numbers."""
    return {name: float(value) for name, value in evaluate_export(fit_folder).items()}


def summary_table(results: dict, k: int) -> str:
    lines = ["| variant | recovery (mean best cosine to a true atom) | L0 | FVU | dead latents | fit s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, row in results.items():
        lines.append(f"| {LABELS.get(name, name).format(k=k)} | {row['recovery']:.3f} | {row['l0']:.1f} | {row['fvu']:.3f} | "
                     f"{100 * row['dead_fraction']:.1f}% | {row['fit_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def run(variants: list[str] = list(VARIANTS), steps: int = 3000, batch_size: int = 1024, d: int = 64,
        num_atoms: int = 256, active: int = 8, latents: int = 512, lr: float = 1e-3, seed: int = 0,
        num_samples: int = 60_000, output: str = DEFAULT_OUTPUT, summary: bool = True) -> dict:
    """Fit (or read back) every variant through ``vtrep fit``; returns ``{variant: result}``.

    With ``summary``, writes ``results.json`` and ``summary.md`` (the table printed) in ``output``
    (``sae_vs_saelens.py`` reads its TopK row without rewriting them).
    """
    from vtrep.benchmark.runner import Run, run_folder, run_one, write_fit_config, write_report

    out = Path(output)
    start = time.perf_counter()
    runs = []
    for name in variants:
        config = fit_config(name, steps, batch_size, d, num_atoms, active, latents, lr, seed, num_samples)
        placeholder = Run(dataset=name, seed=seed, fit_config="")
        finished = (run_folder(out, placeholder) / "result.json").is_file()
        path = write_fit_config(out / "configs" / f"{name}_seed{seed}.yaml", config, finished)
        runs.append(Run(dataset=name, seed=seed, fit_config=path, probe={"evaluate": "exported sae, held-out rows"}))
    results = {}
    for one in runs:  # a finished run is read back, never refitted
        row = results[one.dataset] = {k: v for k, v in run_one(one, out, probe).items() if k != "settings"}
        name = one.dataset
        print(f"{name:>10}: recovery {row['recovery']:.3f}, L0 {row['l0']:.1f}, FVU {row['fvu']:.3f}, "
              f"dead {100 * row['dead_fraction']:.1f}%, fit {row['fit_seconds']:.0f} s", flush=True)
    table = summary_table(results, active)
    header = (f"{steps} steps × batch {batch_size}, Adam lr {lr}, d {d}, {num_atoms} atoms, {active} active, "
              f"{latents} latents, {num_samples} rows (1/6 held out), seed {seed}\n\n")
    print(f"\n{header}{table}\nwall {time.perf_counter() - start:.0f} s", flush=True)
    if summary:
        write_report(out, results, header + table)
        print(f"written: {out / 'summary.md'}, {out / 'results.json'}", flush=True)
    return results


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(run, as_positional=False)
