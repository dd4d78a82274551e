"""A local multi-node Ray cluster for the tests: ``ray start --head`` and ``ray start --address``, one
CPU each, private temporary folder and ports, loopback only; torn down by killing exactly its own
processes (found by its temporary folder, and their children), never ``ray stop`` (which stops every
Ray process of the user on the machine, other people's included)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine_helpers import free_port

RAY = str(Path(sys.executable).with_name("ray"))


def cluster_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the cluster's processes and of the drivers that connect to it."""
    env = dict(os.environ if base is None else base)
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", RAY_DISABLE_IMPORT_WARNING="1")
    env.pop("RAY_ADDRESS", None)
    return env


@dataclass
class LocalCluster:
    """Handle of a running cluster: its address (``127.0.0.1:PORT``) and temporary folder."""

    address: str
    temp_dir: Path
    nodes: int
    log: list[str] = field(default_factory=list)

    def pids(self) -> list[int]:
        """Every live process of this cluster: those naming its temporary folder, and their descendants."""
        return cluster_pids(self.temp_dir)

    def worker_pids(self, title: str) -> list[int]:
        """Processes of this cluster whose title starts with ``title`` (e.g. ``ray::MapWorker``)."""
        return [p for p in self.pids() if _cmdline(p).startswith(title)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def cluster_pids(temp_dir: Path) -> list[int]:
    marker = str(temp_dir)
    roots = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and marker in _cmdline(int(e.name))]
    kids = _children()
    found, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid in found or pid == os.getpid():
            continue
        found.add(pid)
        stack.extend(kids.get(pid, []))
    return sorted(p for p in found if _alive(p))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_cluster(nodes: int = 2, cpus_per_node: int = 1, timeout: float = 120.0,
                  extra_env: dict[str, str] | None = None) -> LocalCluster:
    """Start a head and ``nodes - 1`` worker nodes on this machine (``extra_env`` in their environment,
    so in their workers'); raises with the logs when one fails."""
    temp_dir = Path(tempfile.mkdtemp(prefix="cr", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = free_port()
    env = {**cluster_env(), **(extra_env or {})}
    cluster = LocalCluster(address=f"127.0.0.1:{port}", temp_dir=temp_dir, nodes=nodes)
    common = ["--num-cpus", str(cpus_per_node), "--num-gpus", "0", "--node-ip-address", "127.0.0.1",
              "--object-store-memory", str(200 * 1024 * 1024), "--disable-usage-stats",
              "--dashboard-agent-listen-port", str(free_port())]
    head = [RAY, "start", "--head", "--port", str(port), "--temp-dir", str(temp_dir), "--include-dashboard=false",
            *common]
    try:
        for k in range(nodes):
            cmd = head if k == 0 else [RAY, "start", "--address", cluster.address, *common[:-1], str(free_port())]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            cluster.log.append(done.stdout[-2000:] + done.stderr[-2000:])
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{cluster.log[-1]}")
        _wait_for_nodes(cluster, nodes, env, timeout)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def _wait_for_nodes(cluster: LocalCluster, nodes: int, env: dict[str, str], timeout: float) -> None:
    script = ("import ray, sys, time\n"
              f"ray.init(address='{cluster.address}', log_to_driver=False, logging_level='ERROR')\n"
              "deadline = time.time() + float(sys.argv[1])\n"
              "while len([n for n in ray.nodes() if n['Alive']]) < int(sys.argv[2]) and time.time() < deadline:\n"
              "    time.sleep(0.5)\n"
              "print(len([n for n in ray.nodes() if n['Alive']]), ray.cluster_resources().get('CPU'))\n")
    done = subprocess.run([sys.executable, "-c", script, str(timeout), str(nodes)], env=env, capture_output=True,
                          text=True, timeout=timeout + 60)
    alive = int(done.stdout.split()[0]) if done.returncode == 0 and done.stdout.split() else 0
    if alive < nodes:
        raise RuntimeError(f"only {alive} of {nodes} nodes came up:\n{done.stdout}\n{done.stderr[-3000:]}")


def stop_cluster(cluster: LocalCluster, grace: float = 5.0) -> list[int]:
    """Kill the cluster's own processes (TERM, then KILL), remove its folder; returns what is left (none)."""
    pids = cluster.pids()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        pids = [p for p in cluster.pids() if _alive(p)] or [p for p in pids if _alive(p)]
        if not pids:
            break
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    return [p for p in pids if _alive(p)]
