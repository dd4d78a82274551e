"""The HTML audit report: content, self-contained images, class balance before/after, noise estimate, step."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from curate.cli import app
from curate.report.api import report_step
from curate.report.collect import confident_joint_noise, proposed_after
from curate.review.decisions import append_decisions, read_decisions
from review_fixtures import review_ws  # noqa: F401 (fixture)

runner = CliRunner()
DATA_URI = re.compile(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _images(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in DATA_URI.findall(html)]


def test_report_is_self_contained_and_complete(review_ws):
    result = runner.invoke(app, ["report", "-w", str(review_ws.root), "--json", "--set", "top_n=6"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    html = review_ws.path("report/index.html").read_text()
    assert summary["sections"] == ["summary", "classes", "issues", "duplicates", "noise", "runs", "decisions"]
    assert "src=\"http" not in html and "<script" not in html and "<link" not in html
    images = _images(html)
    assert len(images) == html.count("<img")
    for img in images:
        img.load()                                         # every image decodes
    thumbs = [im for im in images if im.size == (96, 96)]
    plots = [im for im in images if im.size != (96, 96)]
    assert len(plots) >= 5                                 # flagged, distribution, confusion, noise, runs
    assert len(thumbs) >= summary["thumbnails"] > 50      # one per shown image (cached per row)
    assert len({im.tobytes() for im in thumbs}) > 50       # distinct faces, not one placeholder
    findings = review_ws.read_parquet("findings.parquet")
    for check, rows in findings.groupby("check"):
        n = int(rows["flagged"].sum())
        assert f"{check} <span class=\"count\">{'top 6 of ' if n > 6 else ''}{n:,} flagged of {len(rows):,} scored" in html
    # the top flagged mislabel candidate is shown with its score and evidence
    mis = findings[(findings["check"] == "mislabel") & findings["flagged"]]
    top = mis.sort_values("score", ascending=False).iloc[0]
    assert f"{top['score']:.3f}" in html and top["image_id"] in html
    # duplicate clusters show their labels and splits; inter-class first
    dups = review_ws.read_parquet("duplicates.parquet")
    assert html.index('class="tag inter_class"') < html.index('class="tag cross_split"')
    first_inter = dups[dups["cluster_type"] == "inter_class"]
    assert any(i in html for i in first_inter["image_id"])
    # runs table lists both runs with their accuracy
    assert "61.00%" in html and "66.00%" in html
    runs = [r for r in json.loads(review_ws.path("workspace.json").read_text())["runs"] if r["command"] == "report"]
    assert runs and runs[-1]["counts"]["images"] == len(review_ws.manifest()) and runs[-1]["options"]["top_n"] == 6


def test_thumbnails_are_upscaled_faces(review_ws):
    report_step(review_ws, {"top_n": 3, "thumb_size": 96})
    html = review_ws.path("report/index.html").read_text()
    thumbs = [im for im in _images(html) if im.size == (96, 96)]
    rows = np.asarray(review_ws.pixels())
    small = np.asarray(thumbs[0].convert("L").resize((48, 48), Image.BICUBIC), dtype=np.float32)
    err = np.abs(rows.astype(np.float32) - small[None]).mean((1, 2))
    assert err.min() < 6, "a thumbnail is the upscaled pixels of some workspace image"


def test_after_distribution_applies_duplicates_and_decisions(review_ws):
    m = review_ws.manifest()
    dups = review_ws.read_parquet("duplicates.parquet")
    dropped = set(dups.loc[dups["proposed_action"] != "keep", "image_id"])
    keep_one = sorted(dropped)[0]
    exclude_one = next(i for i in m["image_id"] if i not in dropped)
    append_decisions(review_ws, pd.DataFrame({"image_id": [keep_one, exclude_one], "decision": ["keep", "exclude"],
                                              "new_label": [None, None]}), reviewer="t", source="csv")
    after = proposed_after(m, dups, read_decisions(review_ws))
    assert len(after) == len(m) - len(dropped) + 1 - 1
    assert keep_one in set(after["image_id"]) and exclude_one not in set(after["image_id"])
    summary = report_step(review_ws, {})
    assert summary["after_images"] == len(after)


def test_after_uses_split_manifest_when_present(review_ws):
    m = review_ws.manifest()
    cleaned = m.iloc[: len(m) // 2][["image_id", "split", "label"]]
    path = review_ws.path("splits/clean/manifest.parquet")
    path.parent.mkdir(parents=True)
    cleaned.to_parquet(path)
    summary = report_step(review_ws, {})
    html = review_ws.path("report/index.html").read_text()
    assert summary["after_images"] == len(cleaned) and "splits/clean/manifest.parquet" in html


def test_noise_estimate_recovers_known_flip_rate():
    rng = np.random.default_rng(0)
    n, k = 6000, 4
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = (true == 2) & (rng.random(n) < 0.3)             # 30% of class 2 images carry another label
    given[flip] = (true[flip] + 1) % k
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), true] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    est = confident_joint_noise(probs, given, k)
    # class 3 receives the flipped images: share of wrong labels among images labelled 3
    expected_3 = flip.sum() / (given == 3).sum()
    assert est["noise"][3] == pytest.approx(expected_3, abs=0.05)
    assert est["noise"][0] < 0.05 and est["noise"][1] < 0.05
    assert est["joint"].sum() == pytest.approx(n)


def test_report_on_a_bare_workspace(sample_ws):
    summary = report_step(sample_ws, {})
    assert summary["sections"] == ["summary", "classes", "decisions"]
    html = sample_ws.path("report/index.html").read_text()
    assert f"{len(sample_ws.manifest()):,} images" in html


def test_report_step_in_pipelines_and_bad_option(review_ws, tmp_path):
    from curate.config import pipelines_dir, read_yaml
    from curate.pipeline import STEPS, run_pipeline

    assert STEPS["report"] == "curate.report.api:report_step"
    steps = read_yaml(pipelines_dir() / "demo.yaml")["steps"]
    assert list(steps[-1]) == ["report"]
    spec = tmp_path / "p.yaml"
    spec.write_text("name: t\nsteps:\n  - report: {top_n: 2}\n")
    out = run_pipeline(spec, workspace=review_ws.root, quiet=True, log=lambda m: None)
    assert out["steps"][0]["summary"]["report"].endswith("report/index.html")
    bad = runner.invoke(app, ["report", "-w", str(review_ws.root), "--set", "topn=3"])
    assert bad.exit_code == 2 and "unknown option report.topn" in bad.output
