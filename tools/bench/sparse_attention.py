"""Forward + backward time of a sparse pattern on the blocked backend vs dense SDPA, interleaved in one process.

    python tools/bench/sparse_attention.py --lengths [4096,8192,16384] --pattern local

Head dim 64, 6 heads, batch 1, fp32. Dense is plain SDPA over all keys (what a dense backbone
runs); the blocked backend computes the exact pattern. Prints per length the two times and their
ratio, then the growth exponent of time vs N fitted on log-log (dense: about 2).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F


def make_pattern(name: str, window: int, stride: int):
    from vtrep.attention import FixedPattern, LocalWindow

    if name == "local":
        return LocalWindow(window)
    if name == "fixed":
        return FixedPattern(stride, summary=1)
    raise ValueError(f"pattern must be 'local' or 'fixed' (strided needs the permuted path, not built yet), got {name!r}")


def step_time(fn, q, k, v, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        q.grad = k.grad = v.grad = None
        start = time.perf_counter()
        fn(q, k, v).sum().backward()
        best = min(best, time.perf_counter() - start)
    return best


def exponent(lengths: list[int], times: list[float]) -> float:
    xs, ys = [math.log(n) for n in lengths], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def run(lengths: list[int] = [4096, 8192, 16384], pattern: str = "local", window: int = 64, stride: int = 128,
        block_size: int = 128, heads: int = 6, head_dim: int = 64, repeats: int = 3) -> dict:
    from vtrep.attention.backends.blocked import block_layout, blocked_attention

    chosen = make_pattern(pattern, window, stride)
    rows = {}
    for n in lengths:
        q, k, v = (torch.randn(1, heads, n, head_dim, requires_grad=True) for _ in range(3))
        layout = block_layout(chosen, n, n, block_size)
        sparse = dense = math.inf
        for _ in range(2):  # interleaved rounds
            sparse = min(sparse, step_time(lambda a, b, c: blocked_attention(a, b, c, layout), q, k, v, repeats))
            dense = min(dense, step_time(F.scaled_dot_product_attention, q, k, v, repeats))
        rows[n] = {"blocked_s": sparse, "dense_s": dense, "speedup": dense / sparse}
        print(f"N={n}: blocked {sparse * 1e3:.1f} ms, dense {dense * 1e3:.1f} ms, {dense / sparse:.1f}x", flush=True)
    ns = list(rows)
    print(f"growth exponent: blocked {exponent(ns, [rows[n]['blocked_s'] for n in ns]):.2f}, "
          f"dense {exponent(ns, [rows[n]['dense_s'] for n in ns]):.2f}")
    return rows


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(run, as_positional=False)
