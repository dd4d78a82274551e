"""The engine seam (curate.engine) without a cluster: the choice, the local engine, and every call site
run through a stand-in remote engine (pickled factories, items and results, chunked work) whose outputs
must equal the local engine's byte for byte. The real Ray engine: test_engine_ray.py."""
from __future__ import annotations

import contextlib
import pickle
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pytest

cloudpickle = pytest.importorskip("cloudpickle")  # what Ray ships factories with (it comes with the dev extra)

from curate.engine import Engine, EngineError, LocalEngine, engine_choice, get_engine, set_cli_engine, use_engine
from curate.engine.choice import _reset_for_tests
from curate.errors import UsageError
from curate.ingest.api import ingest
from curate.workspace import Workspace
from engine_helpers import differences

FIXTURE_PHOTOS = Path(__file__).parent / "fixtures" / "photos"


class PicklingEngine(Engine):
    """A remote engine in this process: the factory goes through cloudpickle (as Ray ships it), every
    item and every result through pickle (as the Ray engine's workers exchange them), the factory is
    rebuilt for every batch, batches run in reverse order (results must still come back in input order)."""

    name = "pickling"

    def __init__(self):
        self.maps: list[tuple[str, int]] = []
        self.tasks = 0

    def map_items(self, factory, items: Iterable[Any], *, batch_size: int = 1, workers: int = 1,
                  threads: int = 1) -> Iterator[Any]:
        blob = cloudpickle.dumps(factory)
        items = [pickle.dumps(x) for x in items]
        self.maps.append((type(factory).__name__, len(items)))
        batches = [items[s:s + max(1, batch_size)] for s in range(0, len(items), max(1, batch_size))]
        done = {}
        for k in reversed(range(len(batches))):
            with _torch_threads(threads):  # what a worker's thread limit does
                fn = cloudpickle.loads(blob)()
                done[k] = [pickle.dumps(fn(pickle.loads(x))) for x in batches[k]]
        return iter([pickle.loads(r) for k in range(len(batches)) for r in done[k]])

    def run_tasks(self, fn: Callable[..., Any], calls: Sequence[Sequence[Any]], *,
                  shared: Mapping[str, Any] | None = None, gpus: bool = False,
                  threads: int | None = None) -> Iterator[tuple[int, Any]]:
        fn = cloudpickle.loads(cloudpickle.dumps(fn))
        shared = cloudpickle.loads(cloudpickle.dumps(dict(shared or {})))
        self.tasks += len(calls)
        for i in reversed(range(len(calls))):  # finishing out of order
            yield i, pickle.loads(pickle.dumps(fn(*pickle.loads(pickle.dumps(calls[i])), **shared)))


@contextlib.contextmanager
def _torch_threads(threads: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _fresh_choice(monkeypatch):
    for var in ("CURATE_ENGINE", "CURATE_RAY_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    _reset_for_tests()
    yield
    _reset_for_tests()


# -- the choice ---------------------------------------------------------------------------------

def test_the_local_engine_is_the_default_and_needs_no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert engine_choice() == ("local", None, "default")
    assert isinstance(get_engine(), LocalEngine)


def test_cli_then_environment_then_default(monkeypatch):
    monkeypatch.setenv("CURATE_ENGINE", "ray")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert engine_choice() == ("ray", "10.0.0.1:6379", "CURATE_ENGINE")
    assert set_cli_engine("local", None) == ("local", None, "--engine")
    monkeypatch.delenv("CURATE_ENGINE")
    assert set_cli_engine(None, None) == ("local", None, "default")  # RAY_ADDRESS alone chooses nothing
    monkeypatch.setenv("CURATE_RAY_ADDRESS", "head:6379")
    assert engine_choice() == ("ray", "head:6379", "CURATE_RAY_ADDRESS")  # an address implies ray
    assert set_cli_engine(None, "other:1") == ("ray", "other:1", "--ray-address")
    with pytest.raises(UsageError, match="unknown engine 'spark'"):
        set_cli_engine("spark", None)


def test_the_ray_engine_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    set_cli_engine("ray", None)
    with pytest.raises(EngineError, match=r"curate\[ray\]") as info:
        get_engine()
    assert info.value.exit_code == 2


def test_cli_refuses_an_unknown_engine_and_records_the_choice(sample_ws, monkeypatch):
    from typer.testing import CliRunner

    from curate.cli import app

    res = CliRunner().invoke(app, ["--engine", "spark", "info", "-w", str(sample_ws.root)])
    assert res.exit_code == 2 and "unknown engine 'spark'" in res.output
    res = CliRunner().invoke(app, ["--engine", "local", "dedupe", "-w", str(sample_ws.root), "--embedder", "none",
                                   "-q"])
    assert res.exit_code == 0, res.output
    assert Workspace(sample_ws.root).info()["runs"][-1]["engine"] == {"name": "local", "source": "--engine"}


# -- the local engine ---------------------------------------------------------------------------

class _Square:
    calls = 0

    def __call__(self):
        type(self).calls += 1
        return lambda x: x * x


def test_local_engine_keeps_order_and_builds_the_function_once():
    engine = LocalEngine()
    _Square.calls = 0
    assert list(engine.map_items(_Square(), range(50), batch_size=3, workers=4)) == [x * x for x in range(50)]
    assert list(engine.map_items(_Square(), range(5))) == [0, 1, 4, 9, 16]
    assert _Square.calls == 2
    assert list(engine.run_tasks(pow, [(2, 3), (3, 2)], shared={"mod": 5})) == [(0, 3), (1, 4)]


# -- every call site through a remote engine equals the local engine ----------------------------

def _audit_and_dedupe(ws: Workspace) -> None:
    from curate.audit.api import audit
    from curate.dedupe.api import dedupe

    dedupe(ws, quiet=True)
    audit(ws, quiet=True)


def test_sample_dedupe_and_audit_equal_through_a_remote_engine(sample_ws_path, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "remote"
    for root in (local, remote):
        shutil.copytree(sample_ws_path, root)
    _audit_and_dedupe(Workspace(local))
    engine = PicklingEngine()
    with use_engine(engine):
        _audit_and_dedupe(Workspace(remote))
    assert differences(local, remote) == []
    assert {name for name, _ in engine.maps} >= {"HashBlocks", "EmbedChunks", "DefectViews"}
    assert Workspace(remote).info()["runs"][-1]["engine"] == {"name": "pickling"}


def test_photos_ingest_faces_dedupe_audit_equal_through_a_remote_engine(tmp_path):
    from curate.faces.api import find_faces

    local, remote = Workspace(tmp_path / "local"), Workspace(tmp_path / "remote")
    ingest(local, [FIXTURE_PHOTOS], quiet=True)
    _audit_and_dedupe(local)
    engine = PicklingEngine()
    with use_engine(engine):
        ingest(remote, [FIXTURE_PHOTOS], quiet=True)
        _audit_and_dedupe(remote)
    assert differences(local.root, remote.root) == []
    names = {name for name, _ in engine.maps}
    assert {"DecodeWork", "HashBlocks", "EmbedChunks", "DefectViews", "ShrunkGrey", "PhotoCheckChunks"} <= names
    with use_engine(engine):  # curate faces: the originals again, on the workers
        find_faces(remote, quiet=True)
    find_faces(local, quiet=True)
    assert differences(local.root, remote.root) == []
    assert ("RerunWork", sum(1 for p in FIXTURE_PHOTOS.rglob("*") if p.is_file())) in engine.maps


def test_mislabel_folds_through_a_remote_engine(tmp_path):
    """The folds run as engine tasks (finishing out of order here) and are assembled in fold order."""
    from curate.mislabel.oof import run_oof

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (60, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 3, 60)
    folds = np.arange(60) % 3
    kw = dict(recipe={}, n_classes=3, fingerprint_="x", seed=0, quiet=True, log=lambda _: None,
              fold_runner=_fake_fold)
    local = run_oof(images, labels, folds, out_dir=tmp_path / "a", **kw)
    engine = PicklingEngine()
    remote = run_oof(images, labels, folds, out_dir=tmp_path / "b", engine=engine, **kw)
    assert engine.tasks == 3 and remote.trained == [0, 1, 2]
    for name in ("probs", "embeddings", "aum"):
        assert getattr(local, name).tobytes() == getattr(remote, name).tobytes()
    again = run_oof(images, labels, folds, out_dir=tmp_path / "b", engine=PicklingEngine(), **kw)
    assert again.skipped == [0, 1, 2] and again.probs.tobytes() == local.probs.tobytes()


def _fake_fold(images, labels, folds, fold, *, recipe, n_classes, seed, device, tta, quiet):
    test_idx, train_idx = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
    probs = np.full((len(test_idx), n_classes), 1.0 / n_classes, np.float32)
    probs[:, fold % n_classes] += 0.1
    return {"test_idx": test_idx, "probs": probs, "embeddings": images[test_idx].reshape(len(test_idx), -1)[:, :4]
            .astype(np.float16), "train_idx": train_idx,
            "train_aum": (np.arange(len(train_idx)) / 7.0 + fold).astype(np.float32), "seconds": np.float64(0.0)}
