"""``curate review open``: build the workspace's FiftyOne dataset and serve the App on 127.0.0.1."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from curate.logs import get_logger
from curate.review.dataset import fiftyone, sync_dataset
from curate.review.table import review_table
from curate.workspace import Workspace

HOW_TO_REVIEW = ("Tag samples `keep`, `exclude` or `relabel:<class>` (e.g. relabel:happy), then run "
                 "`curate review pull -w {ws}` to record the decisions.")


def build_review_dataset(ws: Workspace, *, quiet: bool = False) -> dict[str, Any]:
    """Create or update the dataset only (what ``--no-launch`` does); returns counts and timing."""
    t0 = time.perf_counter()
    table, checks = review_table(ws)
    summary = sync_dataset(ws, table, checks, quiet=quiet)
    summary.update(checks=checks, seconds=round(time.perf_counter() - t0, 2), workspace=str(ws.root))
    return summary


def open_review(ws: Workspace, *, port: int = 5151, launch: bool = True, quiet: bool = False,
                wait: bool = True) -> dict:
    """Build/update the dataset, then (``launch``) serve the App on 127.0.0.1:``port``.

    With ``wait`` (the CLI) this blocks until Ctrl-C, then closes the App. Usage tracking is off.
    """
    summary = build_review_dataset(ws, quiet=quiet)
    ws.record_run("review open", counts={k: summary[k] for k in ("samples", "added", "updated", "removed",
                                                                  "pngs_written", "flagged")},
                  options={"port": port, "launch": launch, "dataset": summary["dataset"]})
    if not launch:
        return summary
    fo = fiftyone()
    dataset = fo.load_dataset(summary["dataset"])
    with contextlib.redirect_stdout(sys.stderr):  # FiftyOne's banner; stdout keeps the URL (and --json)
        session = fo.launch_app(dataset, port=port, address="127.0.0.1", remote=True, auto=False)
    url = f"http://127.0.0.1:{port}/"
    summary.update(url=url, port=port)
    print(f"FiftyOne App for {ws.root} (dataset {summary['dataset']}): {url}", flush=True)
    if not quiet:
        logger = get_logger(__name__)
        logger.info(f"Saved views: {', '.join(summary['views'])}")
        logger.info(HOW_TO_REVIEW.format(ws=ws.root))
        logger.info("Press Ctrl-C to stop the App.")
    if wait:
        try:
            session.wait(-1)
        except KeyboardInterrupt:
            pass
        finally:
            session.close()
    else:
        summary["session"] = session
    return summary
