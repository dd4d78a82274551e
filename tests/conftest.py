"""Shared fixtures: the bundled FER2013 sample ingested once per session, offline env vars."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("CURATE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
if "FIFTYONE_DATABASE_DIR" not in os.environ:  # a private FiftyOne database for the test session
    import tempfile

    def _remove_stale_fodb_dirs(max_age_s: float = 3600.0) -> None:
        """Delete earlier sessions' database folders (older than an hour, no mongod using them)."""
        import glob
        import time

        import psutil

        in_use = " ".join(" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
                          if p.info["cmdline"] and "mongod" in p.info["cmdline"][0])
        for folder in glob.glob(os.path.join(tempfile.gettempdir(), "curate-test-fodb-*")):
            try:
                old = time.time() - os.path.getmtime(folder) > max_age_s
            except OSError:
                continue
            if old and folder not in in_use:
                shutil.rmtree(folder, ignore_errors=True)

    _remove_stale_fodb_dirs()
    os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="curate-test-fodb-")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The bundled FER2013 sample (Kaggle CSV format, 1,626 real rows)."""
    from curate.pipeline import sample_path

    return sample_path()


@pytest.fixture(scope="session")
def sample_ws_path(tmp_path_factory, sample_csv) -> Path:
    """A workspace with the bundled sample ingested (session-wide; do not modify it)."""
    from curate.ingest.api import ingest
    from curate.workspace import Workspace

    root = tmp_path_factory.mktemp("sample_ws") / "ws"
    ingest(Workspace(root), [sample_csv], quiet=True)
    return root


@pytest.fixture()
def sample_ws(sample_ws_path, tmp_path):
    """A private copy of the sample workspace that a test may modify."""
    from curate.workspace import Workspace

    dst = tmp_path / "ws"
    shutil.copytree(sample_ws_path, dst)
    return Workspace(dst)
