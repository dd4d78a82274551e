"""The ``curate`` command line (Typer): the app, its global options, and the areas' ``register(app)`` calls."""
from __future__ import annotations

from typing import Optional

import typer
from typer.core import TyperGroup

from curate import __version__
from curate.audit.cli import register as register_audit
from curate.cli_common import EngineOpt, RayAddressOpt, ThreadsOpt
from curate.cli_pipeline import register as register_pipeline
from curate.dedupe.cli import register as register_dedupe
from curate.faces.cli import register as register_faces
from curate.info.cli import register as register_info
from curate.ingest.cli import register as register_ingest
from curate.invocation import set_current_argv
from curate.mislabel.cli import register as register_mislabel
from curate.report.cli import register as register_report
from curate.review.cli import register as register_review
from curate.split.cli import register as register_split
from curate.train.cli import register as register_train


class _RecordingGroup(TyperGroup):
    """The top-level group; records the arguments it parses so runs log the real command line."""

    def parse_args(self, ctx, args):  # type: ignore[override]
        set_current_argv(list(args))
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="curate",
    cls=_RecordingGroup,
    help="Audit and clean facial-expression-recognition datasets: ingest, dedupe, audit, review, split, train-eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          threads: Optional[int] = ThreadsOpt, engine: Optional[str] = EngineOpt,
          ray_address: Optional[str] = RayAddressOpt) -> None:
    """curate: find duplicates, non-faces, watermarks, bad crops and mislabels in FER datasets."""
    from curate.cli_common import run_guarded
    from curate.engine import set_cli_engine
    from curate.threads import set_cli_threads

    set_cli_threads(threads)
    run_guarded(lambda: set_cli_engine(engine, ray_address))


# Every command comes from its own package's ``register(app)``, in the order of ``curate --help``.
for _register in (register_ingest, register_info, register_pipeline, register_audit, register_mislabel,
                  register_review, register_report, register_split, register_train, register_dedupe, register_faces):
    _register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
