"""CLI: ``curate train-eval`` and ``curate compare``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import JsonOpt, QuietOpt, SeedOpt, SetOpt, WorkspaceOpt, emit, guarded


def register(app: typer.Typer) -> None:
    """Add ``train-eval`` and ``compare`` to the curate app."""

    @app.command("train-eval")
    @guarded
    def train_eval_cmd(
        split: str = typer.Option(..., "--split", help="Split to train on (splits/<name>, made by `curate split`)."),
        workspace: Path = WorkspaceOpt,
        model: Optional[str] = typer.Option(None, "--model", help="baseline_cnn | five_layer_cnn | vgg_fer | resnet18_fer (overrides the recipe's; a backbone comes from a recipe such as finetune_resnet18)."),
        recipe: str = typer.Option("cpu_fast", "--recipe", help="Recipe name in configs/train/ or a YAML path."),
        name: Optional[str] = typer.Option(None, "--name", help="Run name: runs/<name>/ (default <split>-<recipe>)."),
        device: str = typer.Option("auto", "--device", help="auto (CUDA when available) | cpu | cuda | cuda:1."),
        resume: bool = typer.Option(False, "--resume", help="Continue from runs/<name>/checkpoints after a kill."),
        seed: int = SeedOpt,
        set_: Optional[List[str]] = SetOpt,
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Train a FER model on a split and evaluate it on the split's test images.

        The classifier predicts the split's classes (its `classes` subset, else its kept classes).
        Fine-tune a pretrained backbone from a local file: --recipe finetune_resnet18 --set checkpoint=PATH.
        Writes runs/<name>/metrics.json (accuracy, macro-F1, per-class P/R/F1, confusion),
        confusion.png, curves.png, predictions.parquet, model.pt and per-epoch checkpoints.
        """
        from curate.train.api import render_train_eval, train_eval
        from curate.workspace import Workspace

        summary = train_eval(Workspace(workspace), split, recipe=recipe, model=model, name=name,
                             overrides=set_, seed=seed, device=device, resume=resume, quiet=quiet)
        emit(summary, as_json, render_train_eval, quiet)

    @app.command("expression-model")
    @guarded
    def expression_model_cmd(
        action: str = typer.Argument(..., help="export (package a train-eval run as the expression model) | info."),
        workspace: Path = WorkspaceOpt,
        run: Optional[str] = typer.Option(None, "--run", help="export: the train-eval run (runs/<name>) to package."),
        out: Optional[Path] = typer.Option(None, "--out", help="export: NAME.pt to write (NAME.json and NAME-seen.npy "
                                           "next to it); info: the model to describe (default: the bundled one)."),
        seen: Optional[List[Path]] = typer.Option(None, "--seen", help="export: more workspaces whose images the model "
                                                  "must never judge (e.g. FER2013 ingested from the folder release); "
                                                  "the run's own workspace always counts whole."),
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """The expression model that ships with curate (trained on FER2013 with the default cleaned split):
        `export` writes a train-eval run as plain float16 tensors, a sidecar (classes, recipe, seed, data
        digest, command, test accuracy) and the digests of every image it must never judge; `info` shows one.
        Used by `curate mislabel --set judge=expression|both` and recipes with `init: expression`."""
        from curate.train.expression_api import expression_info, export_run

        if action == "export":
            if not run or not out:
                from curate.errors import CurateError

                raise CurateError("expression-model export needs --run RUN and --out NAME.pt", exit_code=2)
            result = export_run(workspace, run, out, seen or [])
        elif action == "info":
            result = expression_info(out)
        else:
            from curate.errors import CurateError

            raise CurateError(f"expression-model: unknown action {action!r} (export | info)", exit_code=2)
        emit(result, as_json, lambda r: "\n".join(f"{k}: {v}" for k, v in r.items() if not isinstance(v, (dict, list))),
             quiet)

    @app.command("compare")
    @guarded
    def compare(
        runs: Optional[List[str]] = typer.Argument(None, help="Run names (default: every finished run)."),
        workspace: Path = WorkspaceOpt,
        report: Optional[Path] = typer.Option(None, "--report", help="Also write a Markdown comparison report "
                                              "(metrics, per-class F1, confusion matrices, split counts) here."),
        review: Optional[Path] = typer.Option(None, "--review", help="Also score each run on the test images of this "
                                              "by-eye label review (reports/review/fer2013-labels-reviewed.csv)."),
        against: Optional[str] = typer.Option(None, "--against", help="With --review: comma-separated base runs paired "
                                              "one to one with RUNS (one pair per seed): the mean difference over "
                                              "seeds with a 95% paired bootstrap interval."),
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Table of runs side by side (e.g. raw vs cleaned): accuracy, macro-F1, per-class F1."""
        from curate.train.api import compare_runs, render_compare
        from curate.workspace import Workspace

        base = [a.strip() for a in against.split(",") if a.strip()] if against else None
        emit(compare_runs(Workspace.open(workspace), runs, report=report, review=review, against=base), as_json,
             render_compare, quiet)

    @app.command("train-bench")
    @guarded
    def train_bench_cmd(
        recipe: str = typer.Option("cpu_fast", "--recipe", help="Recipe name in configs/train/ or a YAML path."),
        batches: int = typer.Option(8, "--batches", help="Training batches to time."),
        target_tflops: float = typer.Option(25.0, "--target-tflops", help="Sustained TFLOP/s of the device to estimate for."),
        report: Optional[Path] = typer.Option(None, "--report", help="Also write the figures as a section of this "
                                              "Markdown report (kept when `curate compare --report` rewrites it)."),
        set_: Optional[List[str]] = SetOpt,
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Measure a recipe's images/s (CPU, and GPU when present) and estimate its full-run time (FLOP count)."""
        from curate.train.bench import bench_recipe, render_bench, write_bench_section

        result = bench_recipe(recipe, overrides=set_, batches=batches, target_tflops=target_tflops)
        if report is not None:
            result["report"] = str(write_bench_section(result, report))
        emit(result, as_json, render_bench, quiet)
