"""Thread count: usable cores (affinity, cgroup quota), precedence, never the load average."""
from __future__ import annotations

import os

import pytest

from curate import threads


@pytest.fixture(autouse=True)
def clean_state(monkeypatch):
    """No thread settings from the test session's environment or from earlier tests."""
    for var in ("CURATE_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    threads._reset_for_tests()
    yield
    threads._reset_for_tests()


def _fake_machine(monkeypatch, affinity: int, quota: float | None):
    monkeypatch.setattr(threads, "affinity_cores", lambda: affinity)
    monkeypatch.setattr(threads, "cgroup_cores", lambda *a, **k: quota)


def test_usable_cores_is_the_smallest_limit_rounded_down_at_least_one(monkeypatch):
    _fake_machine(monkeypatch, 8, None)
    assert threads.usable_cores() == 8
    _fake_machine(monkeypatch, 8, 2.0)
    assert threads.usable_cores() == 2
    _fake_machine(monkeypatch, 2, 4.0)
    assert threads.usable_cores() == 2
    _fake_machine(monkeypatch, 8, 1.5)
    assert threads.usable_cores() == 1
    _fake_machine(monkeypatch, 8, 0.5)
    assert threads.usable_cores() == 1


def test_affinity_reader_uses_sched_getaffinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert threads.affinity_cores() == 3


def test_cgroup_v2_cpu_max_parsing(tmp_path):
    assert threads.parse_cpu_max("max 100000\n") is None
    assert threads.parse_cpu_max("150000 100000\n") == pytest.approx(1.5)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cores(tmp_path, proc_cgroup="0::/\n") is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cores(tmp_path, proc_cgroup="0::/\n") == pytest.approx(1.5)
    # the process's own cgroup below the root, with a tighter quota on a parent level
    own = tmp_path / "app" / "job"
    own.mkdir(parents=True)
    (own / "cpu.max").write_text("max 100000\n")
    (tmp_path / "app" / "cpu.max").write_text("100000 100000\n")
    assert threads.cgroup_cores(tmp_path, proc_cgroup="0::/app/job\n") == pytest.approx(1.0)


def test_cgroup_v1_cfs_quota_parsing(tmp_path):
    cpu = tmp_path / "cpu,cpuacct"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    v1 = "4:memory:/x\n2:cpu,cpuacct:/\n"
    assert threads.cgroup_cores(tmp_path, proc_cgroup=v1) is None
    (cpu / "cpu.cfs_quota_us").write_text("150000\n")
    assert threads.cgroup_cores(tmp_path, proc_cgroup=v1) == pytest.approx(1.5)
    assert threads.parse_cfs("200000", "100000") == pytest.approx(2.0)
    assert threads.cgroup_cores(tmp_path / "nothing-here", proc_cgroup=v1) is None


def test_quota_file_feeds_usable_cores(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    monkeypatch.setattr(threads, "affinity_cores", lambda: 16)
    real = threads.cgroup_cores
    monkeypatch.setattr(threads, "cgroup_cores", lambda: real(tmp_path, proc_cgroup="0::/\n"))
    assert threads.usable_cores() == 1


def test_precedence_option_env_omp_cores(monkeypatch):
    _fake_machine(monkeypatch, 6, None)
    assert threads.thread_choice() == (6, "usable cores")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.thread_choice() == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("CURATE_THREADS", "2")
    assert threads.thread_choice() == (2, "CURATE_THREADS")
    threads.set_cli_threads(5)
    assert threads.thread_choice() == (5, "--threads")
    assert threads.resolve_threads(4) == 4                    # an explicit value passed in wins
    assert threads.resolve_threads() == 5
    threads.set_cli_threads(0)                                # --threads 0 = not given
    assert threads.resolve_threads() == 2


def test_bad_values(monkeypatch):
    _fake_machine(monkeypatch, 4, None)
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")             # not ours: skipped
    assert threads.thread_choice() == (4, "usable cores")
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")              # nested OpenMP list: the outer level
    assert threads.resolve_threads() == 3
    monkeypatch.setenv("CURATE_THREADS", "0")
    with pytest.raises(threads.ThreadsError, match="CURATE_THREADS"):
        threads.resolve_threads()


def test_high_load_average_changes_nothing(monkeypatch):
    _fake_machine(monkeypatch, 2, None)
    before = threads.thread_choice()
    monkeypatch.setattr(os, "getloadavg", lambda: (10.0, 10.0, 10.0))
    assert threads.thread_choice() == before == (2, "usable cores")
    monkeypatch.setenv("CURATE_THREADS", "2")
    assert threads.resolve_threads() == 2


def test_apply_sets_torch_once_and_logs_the_source(monkeypatch):
    import torch

    _fake_machine(monkeypatch, 2, None)
    previous = torch.get_num_threads()
    lines: list[str] = []
    try:
        monkeypatch.setattr(os, "getloadavg", lambda: (10.0, 10.0, 10.0))
        choice = threads.apply_threads(log=lines.append)
        assert choice == (2, "usable cores") and torch.get_num_threads() == 2
        assert len(lines) == 1 and "threads: 2" in lines[0] and "usable cores" in lines[0]
        threads.apply_threads(log=lines.append)                # same choice: nothing to do, no log
        assert len(lines) == 1
        threads.apply_threads(1, source="recipe num_threads", log=lines.append)
        assert torch.get_num_threads() == 1 and "recipe num_threads" in lines[-1]
    finally:
        torch.set_num_threads(previous)


def test_trainer_uses_the_choice_not_the_load(monkeypatch):
    import torch

    from curate.train.trainer import configure_threads

    _fake_machine(monkeypatch, 2, None)
    monkeypatch.setattr(os, "getloadavg", lambda: (10.0, 10.0, 10.0))
    previous = torch.get_num_threads()
    try:
        assert configure_threads(0) == 2
        monkeypatch.setenv("CURATE_THREADS", "1")
        assert configure_threads(0) == 1 and torch.get_num_threads() == 1
        assert configure_threads(2) == 2                      # a recipe's num_threads wins
    finally:
        torch.set_num_threads(previous)


def test_global_cli_option(monkeypatch):
    from typer.testing import CliRunner

    from curate.cli import app

    seen = {}
    monkeypatch.setattr(threads, "set_cli_threads", lambda n: seen.setdefault("n", n))
    result = CliRunner().invoke(app, ["--threads", "1", "mislabel", "--help"])
    assert result.exit_code == 0 and seen["n"] == 1
    assert "--threads" in CliRunner().invoke(app, ["--help"]).output
