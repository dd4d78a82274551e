"""One logger (issue 13 item 4): library code logs to ``curate.*``; the CLI shows it on stderr, only
warnings under --quiet, and --json keeps stdout for the JSON alone."""
from __future__ import annotations

import json
import logging

from typer.testing import CliRunner

from curate.cli import app
from curate.logs import cli_logging, get_logger
from curate.mislabel import api as mislabel_api
from curate.pipeline import run_pipeline

runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
REASON = "not judged: out-of-fold accuracy 20.0% vs majority-class 25.0% (p=0.99); ..."
SUMMARY = {"mode": "oof", "variant": "combined", "images": 10, "folds": 3, "oof_accuracy": 0.2,
           "trained_folds": [0], "skipped_folds": [], "estimated_issues": 0, "flagged": 0, "judged": False,
           "reason": REASON}


def _pipeline(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\nsteps:\n  - info: {plot: false}\n")
    return spec


def _stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_quiet_leaves_only_warnings_on_stderr_and_json_only_json_on_stdout(monkeypatch, sample_ws):
    def fake(ws, log=None, **kw):  # says what run_mislabel says, through the same logger
        mislabel_api.logger.info("mislabel: 3 photos without a face crop left out (see no_face)")
        mislabel_api.logger.warning(f"warning: mislabel {REASON}")
        return dict(SUMMARY)

    monkeypatch.setattr(mislabel_api, "run_mislabel", fake)
    for args in (["--quiet"], ["--json", "--quiet"], ["--json"], []):
        res = runner.invoke(app, ["mislabel", "-w", str(sample_ws.root), *args])
        assert res.exit_code == 0, res.output
        lines = _stderr_lines(res)
        assert lines.count(f"warning: mislabel {REASON}") == 1, (args, lines)  # plain message, once
        if "--quiet" in args:
            assert all(line.startswith("warning:") for line in lines), (args, lines)
        else:
            assert "mislabel: 3 photos without a face crop left out (see no_face)" in lines, (args, lines)
        if "--json" in args:
            assert json.loads(res.stdout)["reason"] == REASON
        assert "warning:" not in res.stdout and "no_face" not in res.stdout


def test_pipeline_chatter_goes_to_stderr_and_quiet_hides_it(sample_ws, tmp_path):
    spec = _pipeline(tmp_path)
    loud = runner.invoke(app, ["run", str(spec), "-w", str(sample_ws.root), "--json"])
    assert loud.exit_code == 0, loud.output
    assert json.loads(loud.stdout)["steps"][0]["step"] == "info"          # stdout: the JSON only
    assert "[tiny] info ..." in _stderr_lines(loud) and "[tiny]" not in loud.stdout
    quiet = runner.invoke(app, ["run", str(spec), "-w", str(sample_ws.root), "--json", "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.stdout)["pipeline"] == "tiny"
    assert all(line.startswith("warning:") for line in _stderr_lines(quiet)), quiet.stderr
    text = runner.invoke(app, ["run", str(spec), "-w", str(sample_ws.root), "--quiet"])
    assert text.exit_code == 0 and text.stdout == "" and _stderr_lines(text) == []
    logger = logging.getLogger("curate")  # the command's handler is gone again
    assert logger.handlers == [] and logger.propagate and logger.level == logging.NOTSET


def test_a_library_call_logs_to_the_curate_logger(caplog, sample_ws, tmp_path, capsys):
    with caplog.at_level(logging.INFO, logger="curate"):
        result = run_pipeline(_pipeline(tmp_path), workspace=sample_ws.root, quiet=True)
    assert result["steps"][0]["step"] == "info"
    said = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("curate.pipeline", logging.INFO, "[tiny] info ...") in said
    out = capsys.readouterr()
    assert "[tiny]" not in out.out and "[tiny]" not in out.err  # the library configures no handler


def test_children_and_the_cli_handler():
    assert get_logger("pipeline").name == "curate.pipeline" and get_logger("curate.x.y").name == "curate.x.y"
    assert get_logger().name == "curate"
    with cli_logging(quiet=True) as logger:
        assert logger.level == logging.WARNING and not logger.propagate and len(logger.handlers) == 1
    with cli_logging() as logger:
        assert logger.level == logging.INFO
    assert logging.getLogger("curate").handlers == []
