"""Forward + backward time and peak memory of each sparse pattern (blocked backend) vs dense SDPA.

    python tools/bench/sparse_attention.py                      # N = 4k, 8k, 16k, 32k; all patterns
    python tools/bench/sparse_attention.py --lengths [4096,8192] --patterns [local] --memory false
    python tools/bench/sparse_attention.py --device cuda --backend flex --patterns [local,strided,fixed]

On ``--device cuda`` each forward+backward is timed up to a ``synchronize`` and the memory column is
the CUDA allocator's peak above what was allocated before the step (``--backend flex`` runs the
patterns through FlexAttention, which has no CPU backward; block top-k is blocked-only).

Batch 1, 6 heads × 64, fp32, both cores. "dense" is plain SDPA over all keys (what a dense
backbone runs; its CPU kernel is flash-style, O(N) memory). Each pattern runs through
``PatternAttention(pattern, "blocked")``, i.e. the exact pattern, including per-call work (block
top-k selects its blocks and builds its layout at every call; static layouts are cached, as in
a backbone). Timings are interleaved: each round times dense and then every pattern at one N,
and the best of the rounds is kept. Peak memory is measured in a fresh process per
(method, N): the peak RSS of one forward+backward above the RSS just before it (inputs allocated,
layouts cached), so it counts activations, saved tensors and gradients. Prints per N the times,
the speed-up over dense, memory, and per method the growth exponent of time vs N (log-log fit).
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import time

import torch
import torch.nn.functional as F

HEADS, HEAD_DIM = 6, 64


def build(name: str, block_size: int, backend: str = "blocked"):
    """``(label, attention fn)`` of a method name: ``dense`` or a pattern name."""
    from vtrep.attention import (
        BlockTopK,
        FixedPattern,
        LocalWindow,
        PatternAttention,
        StridedPattern,
    )

    patterns = {
        "local": LocalWindow(64),
        "strided": StridedPattern(256),
        "fixed": FixedPattern(128, summary=16),
        "topk": BlockTopK(block=block_size, top_k=8, window=64),
    }
    if name == "dense":
        return "dense SDPA", F.scaled_dot_product_attention
    if name not in patterns:
        raise ValueError(f"unknown pattern {name!r}; choose from {sorted(patterns)}")
    attend = PatternAttention(patterns[name], backend, block_size=block_size)
    return repr(patterns[name]), lambda q, k, v: attend(q, k, v)


def inputs(n: int, device: str = "cpu"):
    return [torch.randn(1, HEADS, n, HEAD_DIM, device=device, requires_grad=True) for _ in range(3)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_time(fn, q, k, v) -> float:
    q.grad = k.grad = v.grad = None
    _sync(q.device)
    start = time.perf_counter()
    fn(q, k, v).sum().backward()
    _sync(q.device)  # CUDA runs asynchronously: time the work, not its launch
    return time.perf_counter() - start


def cuda_peak_mb(fn, q, k, v) -> float:
    """CUDA allocator peak (MB) of one forward+backward above what was allocated before it."""
    q.grad = k.grad = v.grad = None
    torch.cuda.synchronize(q.device)
    before = torch.cuda.memory_allocated(q.device)
    torch.cuda.reset_peak_memory_stats(q.device)
    fn(q, k, v).sum().backward()
    torch.cuda.synchronize(q.device)
    return (torch.cuda.max_memory_allocated(q.device) - before) / 2**20


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _probe(name: str, n: int, block_size: int, queue) -> None:
    fn = build(name, block_size)[1]
    q, k, v = inputs(n)
    fn(q, k, v).sum().backward()  # builds and caches the layout, as a backbone's first step does
    q.grad = k.grad = v.grad = None
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the step's allocations show in RSS
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = _status_kb("VmRSS")
    fn(q, k, v).sum().backward()
    queue.put((_status_kb("VmHWM") - before) / 1024)


def peak_memory_mb(name: str, n: int, block_size: int) -> float:
    """Peak RSS (MB) of one forward+backward above the RSS before it (inputs allocated, layout cached), in a
    fresh process (Linux: resets the peak mark through ``/proc/self/clear_refs``)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_probe, args=(name, n, block_size, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"memory probe of {name} at N={n} failed (exit code {proc.exitcode})")
    return queue.get(timeout=10)


def exponent(lengths: list[int], times: list[float]) -> float:
    xs, ys = [math.log(n) for n in lengths], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def run(lengths: list[int] = [4096, 8192, 16384, 32768], patterns: list[str] = ["local", "strided", "fixed", "topk"],
        block_size: int = 64, rounds: int = 2, memory: bool = True, device: str = "cpu",
        backend: str = "blocked") -> dict:
    methods = ["dense"] + patterns
    fns = {name: build(name, block_size, backend) for name in methods}
    for name in patterns:
        print(f"{name}: {fns[name][0]}")
    times = {name: {} for name in methods}
    for n in lengths:
        q, k, v = inputs(n, device)
        for name in methods:  # warm-up: builds and caches the layouts
            step_time(fns[name][1], q, k, v)
        for _ in range(rounds):
            for name in methods:
                t = step_time(fns[name][1], q, k, v)
                times[name][n] = min(times[name].get(n, math.inf), t)
        if not memory:
            mem = {}
        elif q.device.type == "cuda":
            mem = {name: cuda_peak_mb(fns[name][1], q, k, v) for name in methods}
        else:
            mem = {name: peak_memory_mb(name, n, block_size) for name in methods}
        dense = times["dense"][n]
        cells = [f"dense {dense * 1e3:.0f} ms" + (f" / {mem['dense']:.0f} MB" if memory else "")]
        for name in patterns:
            cell = f"{name} {times[name][n] * 1e3:.0f} ms ({dense / times[name][n]:.1f}x)"
            cells.append(cell + (f" / {mem[name]:.0f} MB" if memory else ""))
        print(f"N={n}: " + ", ".join(cells), flush=True)
        times.setdefault("memory_mb", {})[n] = mem
    if len(lengths) > 1:
        print("growth exponent of time vs N: " + ", ".join(
            f"{name} {exponent(lengths, [times[name][n] for n in lengths]):.2f}" for name in methods))
    return times


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(run, as_positional=False)
