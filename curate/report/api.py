"""``curate report``: one self-contained HTML audit report (report/index.html) for a workspace."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from curate import atomic
from curate.report import plots
from curate.report.collect import collect
from curate.report.photos import photo_legend, report_thumbnails
from curate.report.render import (b64_png, check_gallery, cluster_row, esc, frame_table, kpis, page,
                                  runs_table)
from curate.settings import ReportSettings, load_settings
from curate.workspace import Workspace, utc_now

REPORT_FILE = "report/index.html"
CHECK_ORDER = ("mislabel", "non_face", "watermark", "misaligned", "cartoon", "occlusion", "blank", "dark", "light",
               "low_contrast", "blurry", "low_information")


def _img(data: bytes, alt: str) -> str:
    return f'<img class="plot" src="{b64_png(data)}" alt="{esc(alt)}">'


def _summary(data: dict[str, Any]) -> str:
    splits = pd.DataFrame({"images": pd.Series(data["splits"])})
    splits.index.name = "split"
    body = kpis(data) + '<div style="display:flex;gap:40px;flex-wrap:wrap;margin-top:14px"><div>' + frame_table(splits)
    body += "</div>"
    if data["checks"]:
        body += "<div>" + _img(plots.flagged_per_check(_ordered(data["checks"])), "flagged per check") + "</div>"
    return body + "</div>"


def _ordered(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {c: i for i, c in enumerate(CHECK_ORDER)}
    return sorted(checks, key=lambda c: (rank.get(c["check"], len(rank)), c["check"]))


def _distribution(data: dict[str, Any]) -> str:
    before, after = data["before"].copy(), data["after"].copy()
    before.index.name = after.index.name = "class"
    return (_img(plots.class_distribution(before, after), "class distribution before and after")
            + f'<p class="note">After = {esc(data["after_source"])}.</p>'
            + '<div style="display:flex;gap:40px;flex-wrap:wrap"><div><h3>Before</h3>' + frame_table(before)
            + "</div><div><h3>After</h3>" + frame_table(after) + "</div></div>")


def _duplicates(dup: dict[str, Any], thumb) -> str:
    counts = pd.DataFrame({"clusters": pd.Series(dup["counts"], dtype="int64")})
    counts.index.name = "type"
    actions = pd.DataFrame({"images": pd.Series(dup["actions"], dtype="int64")})
    actions.index.name = "proposed action"
    body = ('<div style="display:flex;gap:40px;flex-wrap:wrap"><div>' + frame_table(counts) + "</div><div>"
            + frame_table(actions) + "</div></div>" + photo_legend(thumb))
    by_type: dict[str, list] = {}
    for cl in dup["clusters"]:
        by_type.setdefault(cl["type"], []).append(cl)
    for k, (ctype, clusters) in enumerate(by_type.items()):
        rows = "".join(cluster_row(c, thumb) for c in clusters)
        body += (f'<details{" open" if k == 0 else ""}><summary>{esc(ctype)} <span class="count">{len(clusters)} of '
                 f'{dup["counts"].get(ctype, 0):,} clusters shown</span></summary>{rows}</details>')
    return body


def _oof(oof: dict[str, Any]) -> str:
    warning = ""
    if oof.get("judged") is False:
        warning = (f'<p class="warn">{esc(oof.get("reason") or "not judged")}</p><p class="note">The confusion '
                   "matrix and the noise estimates below come from that model and say nothing about the "
                   "labels.</p>")
    return warning + _oof_body(oof)


def _oof_body(oof: dict[str, Any]) -> str:
    noise = pd.DataFrame({"images": oof["counts"].astype(int), "est. wrong": (oof["noise"] * oof["counts"]).round().astype(int)},
                         index=pd.Index(oof["classes"], name="given label"))
    rows = "".join(f"<tr><td>{esc(c)}</td><td>{int(n):,}</td><td>{100 * r:.1f}%</td></tr>"
                   for c, n, r in zip(oof["classes"], noise["images"], oof["noise"]))
    table = f"<table><tr><th>given label</th><th>images</th><th>est. wrong labels</th></tr>{rows}</table>"
    title = f"OOF {oof.get('recipe') or ''} ({oof.get('folds') or '?'} folds), accuracy {100 * (oof['accuracy'] or 0):.1f}%"
    return ('<div style="display:flex;gap:30px;flex-wrap:wrap;align-items:flex-start"><div>'
            + _img(plots.confusion_matrix(oof["confusion"], oof["classes"], title), "confusion matrix")
            + "</div><div>" + _img(plots.noise_rates(oof["classes"], oof["noise"]), "noise per class") + table
            + '<p class="note">Confident-learning estimate: per class, the share of images whose out-of-fold '
              "probabilities point confidently to another class (rows calibrated to class counts).</p></div></div>")


def build_report(ws: Workspace, *, top_n: int | None = None, max_clusters: int | None = None,
                 thumb_size: int | None = None, photo_size: int | None = None, quiet: bool = False) -> dict[str, Any]:
    """Write report/index.html; returns the path, section counts and timing.

    Parameters
    ----------
    ws : Workspace
        A workspace; each section shows what the steps run so far wrote (findings, duplicates,
        splits, runs).
    top_n : int, optional
        Flagged images shown per check gallery (highest scores first); None = configs/report.yaml's
        ``top_n`` (24 as shipped). Default None.
    max_clusters : int, optional
        Duplicate clusters shown (label-conflict clusters first, then the largest); None = the
        settings' ``max_clusters`` (40 as shipped). Default None.
    thumb_size : int, optional
        Side in pixels of each face-crop thumbnail; None = the settings' ``thumb_size`` (96 as
        shipped). Default None.
    photo_size : int, optional
        Long side in pixels of each photo shown on a photo workspace's cards; None = the settings'
        ``photo_size`` (256 as shipped). Default None.
    quiet : bool, default=False
        No progress bars or messages on stderr.
    """
    given = {"top_n": top_n, "max_clusters": max_clusters, "thumb_size": thumb_size, "photo_size": photo_size}
    return _write_report(ws, load_settings("report", {k: v for k, v in given.items() if v is not None}))


def _write_report(ws: Workspace, cfg: ReportSettings) -> dict[str, Any]:
    """:func:`build_report` with its settings read."""
    t0 = time.perf_counter()
    data = collect(ws, top_n=cfg.top_n, max_clusters=cfg.max_clusters)
    thumb = report_thumbnails(ws, data, size=cfg.thumb_size, photo_size=cfg.photo_size)
    checks = _ordered(data["checks"])
    sections = [("summary", "Summary", f"{data['images']:,} images", _summary(data)),
                ("classes", "Class distribution", f"{data['images']:,} → {data['after_images']:,}", _distribution(data))]
    if checks:
        galleries = photo_legend(thumb) + "".join(check_gallery(c, thumb, open_=k == 0) for k, c in enumerate(checks))
        sections.append(("issues", "Issues by check", f"{data['flagged_images']:,} images flagged", galleries))
    if data["duplicates"]["clusters"]:
        dup = data["duplicates"]
        sections.append(("duplicates", "Duplicate clusters",
                         f"{sum(dup['counts'].values()):,} clusters, {dup['images']:,} images", _duplicates(dup, thumb)))
    if data["oof"]:
        sections.append(("noise", "Out-of-fold predictions and label noise", f"{data['oof']['images']:,} images",
                         _oof(data["oof"])))
    runs = data["runs"]
    if runs:
        body = runs_table(runs)
        if any("error" not in r for r in runs):
            body += _img(plots.runs_comparison(runs), "runs comparison")
        sections.append(("runs", "Training runs", f"{len(runs)} runs", body))
    dec = data["decisions"]
    latest = ", ".join(f"{k}: {v:,}" for k, v in sorted(dec["latest"].items())) or "none yet"
    sections.append(("decisions", "Reviewer decisions", f"{dec['images']:,} images",
                     f"<p>Latest decision per image: {esc(latest)}. {dec['rows']:,} rows in decisions.parquet"
                     f"{' by ' + esc(', '.join(dec['reviewers'])) if dec['reviewers'] else ''}.</p>"
                     f'<p class="note">Review in the App with <code>curate review open -w {esc(ws.root)}</code> '
                     "or through <code>curate review export</code> / <code>import</code>.</p>"))
    html = page(f"curate audit report: {ws.root.name}", f"{ws.root} · generated {utc_now()}", sections)
    path = ws.path(REPORT_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, html)
    return {"report": str(path), "bytes": len(html.encode("utf-8")), "thumbnails": len(thumb._cache),
            "sections": [s[0] for s in sections], "images": data["images"], "flagged_images": data["flagged_images"],
            "after_images": data["after_images"], "seconds": round(time.perf_counter() - t0, 2)}


def report_step(ws: Workspace, options: dict[str, Any], *, seed: int = 0, quiet: bool = False,
                config_file: str | Path | None = None) -> dict[str, Any]:
    """Pipeline step ``report`` (also behind ``curate report``); options override configs/report.yaml
    (and ``config_file``, merged before them)."""
    cfg = load_settings("report", options, config_file)
    started = utc_now()
    summary = _write_report(Workspace.open(ws.root), cfg)
    ws.record_run("report", seed=seed, started=started, options=cfg.to_dict(),
                  counts={k: summary[k] for k in ("images", "flagged_images", "after_images", "thumbnails", "seconds")})
    return summary
