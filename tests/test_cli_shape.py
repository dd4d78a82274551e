"""One CLI shape: every command registered by its area, --help everywhere, guarded bodies,
deprecated names, and mislabel as an opt-in entry of the audit registry."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from curate.cli import app
from curate.cli_common import guarded

runner = CliRunner()

COMMANDS = {"ingest", "info", "run", "demo", "audit", "audit-model", "audit-bench", "mislabel", "mislabel-bench",
            "review", "report", "split", "export", "train-eval", "compare", "train-bench", "dedupe", "dedupe-bench",
            "faces", "photos-bench", "expression-model"}
DEPRECATED = {"bench-audit": "audit-bench"}


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):  # a group (typer's click, which may be its own copy)
            yield from _commands(cmd, prefix + (name,))


def test_every_registered_command_has_help_and_a_guarded_body():
    group = typer.main.get_command(app)
    assert set(group.commands) == COMMANDS | set(DEPRECATED)
    assert {name for name, cmd in group.commands.items() if cmd.hidden} == set(DEPRECATED)
    commands = list(_commands(group))
    for path, cmd in commands:
        result = runner.invoke(app, list(path) + ["--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
        if not hasattr(cmd, "commands"):
            assert getattr(cmd.callback, "curate_guarded", False), f"{' '.join(path)}: body not under @guarded"
    listed = runner.invoke(app, ["--help"]).output
    assert "audit-bench" in listed and "bench-audit" not in listed


def test_deprecated_command_name_runs_the_new_command_with_a_note(monkeypatch, tmp_path):
    import curate.audit.bench

    calls = []

    def fake_run_bench(data, **kwargs):
        calls.append((Path(data), kwargs["per_type"], kwargs["seed"]))
        return {"report": str(kwargs["out"]), "per_type": kwargs["per_type"]}

    monkeypatch.setattr(curate.audit.bench, "run_bench", fake_run_bench)
    args = ["--data", str(tmp_path / "x.csv"), "--out", str(tmp_path / "r.md"), "--per-type", "7", "--json"]
    new = runner.invoke(app, ["audit-bench", *args])
    old = runner.invoke(app, ["bench-audit", *args])
    assert new.exit_code == 0 and old.exit_code == 0, (new.output, old.output)
    assert old.stdout == new.stdout and json.loads(old.stdout)["per_type"] == 7
    assert calls == [(tmp_path / "x.csv", 7, 0)] * 2
    assert old.stderr.strip() == "note: `curate bench-audit` is deprecated; use `curate audit-bench`"
    assert "deprecated" not in new.stderr
    assert "audit-bench" in runner.invoke(app, ["bench-audit", "--help"]).output


def test_deprecated_pipeline_step_names_still_load(tmp_path):
    from curate.pipeline import DEPRECATED_STEPS, STEPS, load_pipeline, resolve_step

    assert set(DEPRECATED_STEPS.values()) <= set(STEPS) and not set(DEPRECATED_STEPS) & set(STEPS)
    assert {"ingest-bench", "dedupe-bench", "mislabel-bench"} <= set(STEPS)
    assert all(step in COMMANDS or step.endswith("-bench") for step in STEPS)  # a step is named like its command
    p = tmp_path / "p.yaml"
    p.write_text("steps:\n  - dedupe_bench: {n_base: 10}\n  - mislabel-bench: {}\n")
    spec = load_pipeline(p, ["dedupe_bench.per_transform=3"])
    assert spec["steps"] == [("dedupe-bench", {"n_base": 10, "per_transform": 3}), ("mislabel-bench", {})]
    assert spec["notes"] == ["note: pipeline step 'dedupe_bench' is deprecated; use 'dedupe-bench'"]
    assert resolve_step("bench-ingest") is resolve_step("ingest-bench")


def _guarded_app(exc: BaseException) -> typer.Typer:
    demo = typer.Typer(pretty_exceptions_enable=False)

    @demo.command("fail")
    @guarded
    def fail(name: str = typer.Option("x", "--name")) -> None:
        """Raise the error under test."""
        raise exc

    @demo.command("ok")
    @guarded
    def ok(name: str = typer.Option("x", "--name")) -> None:
        """Print the option and stop with exit code 3."""
        typer.echo(name)
        raise typer.Exit(3)

    return demo


@pytest.mark.parametrize("module, name, kwargs, code", [
    ("curate.errors", "CurateError", {}, 1),
    ("curate.errors", "CurateError", {"exit_code": 2}, 2),
    ("curate.config", "ConfigError", {}, 2),
    ("curate.workspace", "WorkspaceError", {}, 1),
    ("builtins", "FileNotFoundError", {}, 1),
])
def test_guarded_maps_user_errors_to_a_message_and_an_exit_code(module, name, kwargs, code):
    error = getattr(importlib.import_module(module), name)("boom", **kwargs)
    result = runner.invoke(_guarded_app(error), ["fail"])
    assert result.exit_code == code
    assert result.stderr == "error: boom\n" and result.stdout == ""


def test_guarded_keeps_options_exits_and_bugs():
    demo = _guarded_app(ValueError("a bug"))
    result = runner.invoke(demo, ["ok", "--name", "hello"])
    assert result.exit_code == 3 and result.stdout == "hello\n"
    assert "--name" in runner.invoke(demo, ["fail", "--help"]).output
    result = runner.invoke(demo, ["fail"])  # a bug keeps its traceback (not turned into a message)
    assert isinstance(result.exception, ValueError) and "error:" not in result.stderr


def test_mislabel_is_an_opt_in_entry_of_the_audit_registry():
    from curate.audit.registry import ALL_CHECKS, CHECKS, DEFAULT_CHECKS, WORKSPACE_CHECKS, resolve_checks

    entry = WORKSPACE_CHECKS["mislabel"]
    assert entry.default_enabled is False and ALL_CHECKS[-1] == "mislabel"
    assert "mislabel" not in DEFAULT_CHECKS and "mislabel" not in resolve_checks(None)
    assert resolve_checks(["all"]) == DEFAULT_CHECKS and set(CHECKS) <= set(DEFAULT_CHECKS)
    assert resolve_checks(["mislabel", "blank"]) == ["blank", "mislabel"]


def test_audit_runs_a_named_workspace_check_by_its_own_stage(sample_ws, monkeypatch):
    import curate.mislabel.api
    from curate.audit.api import audit_step, run_checks

    calls = []
    result = {"mode": "oof", "variant": "combined", "images": 3, "estimated_issues": 0, "flagged": 0}

    def fake_run_mislabel(ws, *, overrides=None, seed=0, quiet=False, log=None, **kw):
        calls.append((Path(ws.root), overrides, seed))
        return dict(result)

    monkeypatch.setattr(curate.mislabel.api, "run_mislabel", fake_run_mislabel)
    res = runner.invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "mislabel", "--json", "--seed", "4",
                              "--set", "mislabel.folds=2", "--set", "blank.threshold=0.5"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"mislabel": result}  # no image check ran
    assert calls[0] == (sample_ws.root, ["folds=2"], 4)
    text = runner.invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "mislabel"]).stdout
    assert text.startswith("mislabel (oof, combined): 3 images")
    summary = audit_step(sample_ws, {"checks": ["blank", "mislabel"], "set": {"mislabel.folds": 3}}, seed=0,
                         quiet=True)
    assert summary["checks"] == ["blank"] and summary["mislabel"]["images"] == 3 and calls[-1][1] == ["folds=3"]
    with pytest.raises(Exception, match="whole workspace"):
        run_checks(sample_ws.pixels()[:2], ["a", "b"], ["mislabel"], {})
