"""The Ray engine on a real two-node local cluster (``ray start --head`` + ``ray start --address``, one
CPU each, loopback only): ingest + dedupe + audit of the bundled sample and of 50 shared scraped photos
equal the local engine's outputs byte for byte; a Ray worker killed mid-ingest is replaced and the run
ends with the same outputs; the mislabel folds run as Ray tasks with the same results. The cluster's
processes are stopped (by their own ids) and checked gone at the end."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'curate[ray]')")

from engine_helpers import SHARED_SCRAPED, differences, photo_subset, workspace_digests  # noqa: E402
from ray_cluster import cluster_env, start_cluster, stop_cluster  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    from s3_server import FAKE_CREDENTIALS

    c = start_cluster(nodes=2, cpus_per_node=1, extra_env=FAKE_CREDENTIALS)  # the S3 test's fake credentials
    try:
        yield c
    finally:
        left = stop_cluster(c)
        assert left == [], f"cluster processes left running: {left}"


def curate(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run the ``curate`` CLI in a child process; its output, or a failure with it."""
    done = subprocess.run([sys.executable, "-m", "curate.cli", *args], cwd=cwd, env=env or cluster_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (f"curate {' '.join(args)} -> {done.returncode}\n{done.stdout[-3000:]}\n"
                                  f"{done.stderr[-5000:]}")
    return done.stdout + done.stderr


def local_run(source: str, ws: Path) -> None:
    """ingest + dedupe + audit with the local engine, in this process."""
    from curate.audit.api import audit
    from curate.dedupe.api import dedupe
    from curate.ingest.api import ingest
    from curate.workspace import Workspace

    ingest(Workspace(ws), [source], quiet=True)
    dedupe(Workspace(ws), quiet=True)
    audit(Workspace(ws), quiet=True)


def ray_run(source: str, ws: Path, address: str, *, via_env: bool = False) -> None:
    """ingest + dedupe + audit on the cluster (``--ray-address``, or RAY_ADDRESS + CURATE_ENGINE in the
    child's environment only)."""
    env = cluster_env()
    head = ["--ray-address", address]
    if via_env:
        env.update(RAY_ADDRESS=address, CURATE_ENGINE="ray")
        head = []
    for step in (["ingest", source], ["dedupe"], ["audit"]):
        curate([*head, *step, "-w", str(ws), "-q"], cwd=ws.parent, env=env)


def test_sample_on_the_cluster_equals_the_local_engine(cluster, sample_csv, tmp_path):
    local_run(str(sample_csv), tmp_path / "local")
    ray_run(str(sample_csv), tmp_path / "ray", cluster.address)
    assert differences(tmp_path / "local", tmp_path / "ray") == []
    from curate.workspace import Workspace

    runs = Workspace(tmp_path / "ray").info()["runs"]
    assert [r["engine"]["name"] for r in runs] == ["ray", "ray", "ray"]
    assert {r["engine"]["address"] for r in runs} == {cluster.address}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    if not SHARED_SCRAPED.is_dir():
        pytest.skip(f"{SHARED_SCRAPED} is not here (the shared scraped photos)")
    root = tmp_path_factory.mktemp("photos50")
    folder = photo_subset(root / "angry-happy-sad", 50)
    local_run(str(folder), root / "local")
    return folder, root / "local"


def test_photos_on_the_cluster_equal_the_local_engine(cluster, photos, tmp_path):
    folder, local = photos
    ray_run(str(folder), tmp_path / "ray", cluster.address, via_env=True)
    assert differences(local, tmp_path / "ray") == []


def test_a_worker_killed_mid_ingest_is_replaced_and_the_outputs_are_the_same(cluster, photos, tmp_path):
    folder, local = photos
    ws = tmp_path / "ray"
    env = cluster_env()
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "--ray-address", cluster.address, "ingest",
                             str(folder), "-w", str(ws), "-q"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    killed, first, replacement = None, set(), set()
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            workers = cluster.worker_pids("ray::MapWorker")
            if killed is None and len(workers) >= 2:  # both actors up and working on photos: kill one mid-run
                time.sleep(4)
                if proc.poll() is None:
                    first = set(cluster.worker_pids("ray::MapWorker"))
                    killed = min(first)
                    os.kill(killed, 9)
            elif killed is not None:
                replacement |= set(workers) - first
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "no Ray map worker was seen to kill"
    assert proc.returncode == 0, out[-5000:]
    assert replacement, "the killed worker was not replaced"
    ingested = {k: v for k, v in workspace_digests(local).items() if k in workspace_digests(ws)}
    assert set(ingested) >= {"manifest.parquet", "pixels-*.u8", "crops-rgb-*.u8", "faces.parquet",
                             "photo_features.parquet"}
    assert workspace_digests(ws) == ingested  # the ingest outputs of the undisturbed local run


def test_mislabel_folds_as_ray_tasks_equal_the_local_engine(cluster, sample_csv, tmp_path):
    import gzip

    lines = gzip.open(sample_csv, "rt").read().splitlines()
    small = tmp_path / "small.csv"
    small.write_text("\n".join(lines[:401]) + "\n")
    args = ["mislabel", "--set", "recipe=demo_tiny", "--set", "folds=2", "--set", "tta=false", "-q"]
    for name, head in (("local", []), ("ray", ["--ray-address", cluster.address])):
        ws = tmp_path / name
        curate(["ingest", str(small), "-w", str(ws), "-q"], cwd=tmp_path)
        out = curate([*head, *args, "-w", str(ws)], cwd=tmp_path)
    for name in ("oof_probs.npy", "mislabel/signals.npz"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    for fold in (0, 1):  # each fold's arrays, less the seconds it took
        with np.load(tmp_path / "local" / f"mislabel/fold_{fold}.npz") as a, \
                np.load(tmp_path / "ray" / f"mislabel/fold_{fold}.npz") as b:
            assert set(a.files) == set(b.files)
            for key in set(a.files) - {"seconds"}:
                assert a[key].tobytes() == b[key].tobytes(), (fold, key)
    assert differences(tmp_path / "local", tmp_path / "ray") == []


def test_the_cluster_reads_a_bucket(cluster, tmp_path):
    """Photos in an S3 bucket (moto's server on a loopback port): the Ray workers fetch them themselves."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    from s3_server import MotoServer

    photos = Path(__file__).parent / "fixtures" / "photos"
    server = MotoServer(tmp_path)
    try:
        fs = server.filesystem()
        fs.mkdir("cluster-test")
        fs.put(str(photos) + "/", "cluster-test/photos/", recursive=True)
        env = {**cluster_env(), **server.env()}
        curate(["--ray-address", cluster.address, "ingest", "s3://cluster-test/photos/", "-w", str(tmp_path / "ray"),
                "-q"], cwd=tmp_path, env=env)
    finally:
        server.stop()
    from curate.ingest.api import ingest
    from curate.workspace import Workspace

    ingest(Workspace(tmp_path / "local"), [photos], quiet=True)
    assert differences(tmp_path / "local", tmp_path / "ray") == ["manifest.parquet differs columns ['source']"]


def test_a_killed_driver_leaves_the_previous_state_and_a_rerun_finishes(cluster, sample_csv, tmp_path):
    """The driver is the commit point: killed mid-ingest, the workspace is as before; run again, it finishes."""
    import signal

    from curate.ingest.api import ingest
    from curate.workspace import Workspace

    photos = Path(__file__).parent / "fixtures" / "photos"
    ws, local = tmp_path / "ray", tmp_path / "local"
    for root in (ws, local):
        ingest(Workspace(root), [sample_csv], quiet=True)
    before = workspace_digests(ws)
    cmd = [sys.executable, "-m", "curate.cli", "--ray-address", cluster.address, "ingest", str(photos), "-w", str(ws),
           "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=cluster_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not cluster.worker_pids("ray::MapWorker"):
            time.sleep(0.2)
        time.sleep(2)
        assert proc.poll() is None, "the ingest ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert workspace_digests(ws) == before
    deadline = time.time() + 60  # the job's actors go with their driver
    while cluster.worker_pids("ray::MapWorker") and time.time() < deadline:
        time.sleep(0.5)
    assert not cluster.worker_pids("ray::MapWorker")
    curate(cmd[3:], cwd=tmp_path)
    ingest(Workspace(local), [photos], quiet=True)
    assert differences(local, ws) == []
