"""Two "nodes" on this machine through ``vtrep fit``: two torchrun agents (``--nnodes 2 --nproc_per_node 1``,
static rendezvous at 127.0.0.1), one process each, gloo. They must form one 2-process group (not two
1-process runs), train as one process with twice the batch, and keep VideoMAE's replicas equal."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_ddp import ROOT, assert_same_training, fit, fit_args, probe_env

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch.distributed.run") is None or not torch.distributed.is_available()
    or not torch.distributed.is_gloo_available(),
    reason="torchrun (torch.distributed.run) with the gloo backend is not available in this torch build")

TIMEOUT_S = 300
# A variable left by an outer launcher would be read by the children instead of what their torchrun sets.
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
                 "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
NODES = ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.accelerator", "cpu",
         "--trainer.strategy", "ddp"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe(name: str, out_dir: Path) -> list[str]:
    return [f"--trainer.callbacks+=ddp_probe.{name}", f"--trainer.callbacks.out_dir={out_dir}"]


def launch_two_nodes(vtrep_args: list[str], cwd: Path, env: dict[str, str]) -> None:
    """``torchrun ... -m vtrep <vtrep_args>`` as node 0 and node 1; fails unless both exit 0 in time."""
    # unbuffered: a killed worker's last lines are in its log
    env = {**{k: v for k, v in env.items() if k not in LAUNCHER_VARS}, "PYTHONUNBUFFERED": "1"}
    port, procs, logs = free_port(), [], []
    try:
        for node_rank in (0, 1):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                   "--node_rank", str(node_rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
                   "-m", "vtrep", *vtrep_args]
            logs.append(open(cwd / f"node{node_rank}.log", "w+"))  # files: two pipes could fill and block
            procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
        timed_out = not wait_for_both(procs, TIMEOUT_S)
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_tree(proc.pid)
                proc.wait()
        for log in logs:
            log.close()
    # A passing run's node 1 log may still end in "Error waiting on exit barrier": node 0's agent hosts the
    # rendezvous store and may leave first; torchrun logs it and exits 0.
    report = "\n".join(f"--- node {r}: exit {p.returncode}, last lines:\n{(cwd / f'node{r}.log').read_text()[-4000:]}"
                       for r, p in enumerate(procs))
    assert not timed_out and all(p.returncode == 0 for p in procs), (
        f"{'timed out after ' + str(TIMEOUT_S) + ' s; ' if timed_out else ''}two-node fit failed\n{report}")


def wait_for_both(procs: list[subprocess.Popen], timeout_s: float) -> bool:
    """Whether both ended in time. Stops waiting once either fails: its peer would block in a collective."""
    deadline = time.monotonic() + timeout_s
    while any(p.poll() is None for p in procs):
        if any(p.poll() not in (None, 0) for p in procs):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def kill_tree(pid: int) -> None:
    """SIGKILL a torchrun agent and its workers. torchrun starts each worker in a session of its own, out of
    reach of a group kill, and a dead agent's children are reparented: so stop the agent, then list them."""
    os.kill(pid, signal.SIGSTOP)
    for victim in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the task may have ended meanwhile
            for child in map(int, (task / "children").read_text().split()):
                found += [child, *descendants(child)]
    return found


def assert_one_group_across_two_nodes(out_dir: Path) -> None:
    topo = [json.loads((out_dir / f"topology{r}.json").read_text()) for r in (0, 1)]
    for rank, seen in enumerate(topo):
        expected = {"world_size": 2, "node_rank": rank, "global_rank": rank, "local_rank": 0, "num_nodes": 2,
                    "dist_world_size": 2, "backend": "gloo", "cluster_environment": "TorchElasticEnvironment"}
        assert {k: seen[k] for k in expected} == expected, f"rank {rank}: {seen}"
    # one collective reached both processes, in rank order
    assert topo[0]["pids"] == topo[1]["pids"] == [topo[0]["pid"], topo[1]["pid"]], topo


def test_two_nodes_train_as_one_process_with_twice_the_batch(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "nodes").mkdir()
    fit(tmp_path / "one", devices=1, batch_size=64)
    nodes = tmp_path / "nodes"
    # fit_args already adds SeenRows, writing to nodes/seen
    launch_two_nodes([*fit_args(nodes, devices=1, batch_size=32), *NODES, *probe("Topology", nodes / "seen")],
                     nodes, probe_env())
    assert_one_group_across_two_nodes(nodes / "seen")
    assert_same_training(tmp_path / "one", nodes)


def test_videomae_replicas_stay_equal_across_two_nodes(tmp_path):
    args = ["fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"),
            "--data.init_args.num_per_class", "4", "--data.init_args.num_workers", "0",
            "--data.init_args.batch_size", "2", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
            "--trainer.logger.init_args.save_dir", str(tmp_path), *NODES,
            *probe("SeenRows", tmp_path / "seen"), *probe("Topology", tmp_path / "seen")]
    # one cache for both nodes, as on a shared filesystem: both generate the clips, one rename wins
    launch_two_nodes(args, tmp_path, {**probe_env(), "VTREP_CACHE": str(tmp_path / "cache")})
    assert_one_group_across_two_nodes(tmp_path / "seen")
    losses = [json.loads((tmp_path / "seen" / f"losses{r}.json").read_text()) for r in (0, 1)]
    assert len(losses[0]) == len(losses[1]) > 0
    # different batches and masks per rank: equal weights below come from gradient sync, not identical runs
    assert losses[0] != losses[1]
    replicas = [load_file(str(tmp_path / "seen" / f"rank{r}.safetensors")) for r in (0, 1)]
    encoder = [name for name in replicas[0] if name.startswith("backbone.")]
    assert encoder and replicas[0].keys() == replicas[1].keys()
    for name in replicas[0]:
        assert torch.equal(replicas[0][name], replicas[1][name]), f"{name} differs between the nodes"
    assert list(tmp_path.rglob("encoder/model.safetensors")), "rank 0 did not export the encoder"
