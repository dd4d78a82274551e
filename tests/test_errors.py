"""The one error tree: every user-facing error is a CurateError carrying its exit code; bugs stay bugs."""
from __future__ import annotations

import pytest
import typer

from curate.errors import ConfigError, CurateError, InputError, UsageError, WorkspaceError


def test_every_user_error_is_a_curate_error_with_its_exit_code():
    assert (CurateError.exit_code, UsageError.exit_code, ConfigError.exit_code, InputError.exit_code,
            WorkspaceError.exit_code) == (1, 2, 2, 1, 1)
    for cls in (UsageError, ConfigError, InputError, WorkspaceError):
        assert issubclass(cls, CurateError)
    assert issubclass(ConfigError, ValueError) and issubclass(InputError, ValueError)  # as they were
    assert CurateError("x").exit_code == 1 and CurateError("x", exit_code=2).exit_code == 2
    assert ConfigError("x").exit_code == 2 and ConfigError("x", exit_code=1).exit_code == 1
    assert ConfigError.exit_code == 2  # an instance's override leaves the class alone


def test_the_old_import_paths_name_the_same_classes():
    from curate import config, workspace

    assert config.ConfigError is ConfigError and workspace.WorkspaceError is WorkspaceError


@pytest.mark.parametrize("exc, code", [(CurateError("missing"), 1), (CurateError("bad", exit_code=2), 2),
                                       (ConfigError("bad key"), 2), (WorkspaceError("locked"), 1),
                                       (InputError("bad header"), 1), (UsageError("bad flag"), 2)])
def test_the_cli_exits_with_the_error_s_code(exc, code, capsys):
    from curate.cli_common import run_guarded

    def go():
        raise exc

    with pytest.raises(typer.Exit) as done:
        run_guarded(go)
    assert done.value.exit_code == code
    assert f"error: {exc}" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback():
    from curate.cli_common import run_guarded

    def go():
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_guarded(go)


def test_dedupe_refuses_a_bad_setting_but_lets_a_bug_through(sample_ws, monkeypatch):
    from curate.dedupe import api

    with pytest.raises(ConfigError, match=r"dedupe\.hash\.methods\[0\]: expected one of phash, dhash, whash; got 'nope'"):
        api.dedupe(sample_ws, overrides=["hash.methods=[nope]"], embedder="none", quiet=True)
    with pytest.raises(ConfigError, match="unknown embedder 'nope'"):
        api.dedupe(sample_ws, embedder="nope", quiet=True)

    def broken(*args, **kwargs):
        raise ValueError("shape mismatch inside find_edges")

    monkeypatch.setattr(api, "find_edges", broken)
    with pytest.raises(ValueError, match="shape mismatch") as caught:
        api.dedupe(sample_ws, embedder="none", quiet=True)
    assert not isinstance(caught.value, CurateError)  # not dressed up as a usage error


def test_ingest_reports_a_source_it_cannot_use_and_lets_a_bug_through(tmp_path, monkeypatch):
    from curate.ingest import api
    from curate.workspace import Workspace

    odd = tmp_path / "odd.csv"
    odd.write_text("picture,name\na.png,x\n")
    with pytest.raises(InputError, match="needs a path column"):
        api.ingest(Workspace(tmp_path / "ws"), [odd], fmt="csv", quiet=True)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,label\nf\xe9e.png,happy\n".encode("latin-1"))
    with pytest.raises(CurateError, match="codec can't decode"):
        api.ingest(Workspace(tmp_path / "ws"), [latin], fmt="csv", quiet=True)

    def broken(*args, **kwargs):
        raise ValueError("a bug in a reader")

    monkeypatch.setattr(api, "_read_source", broken)
    with pytest.raises(ValueError, match="a bug in a reader") as caught:
        api.ingest(Workspace(tmp_path / "ws"), [odd], fmt="csv", quiet=True)
    assert not isinstance(caught.value, CurateError)
