"""Per-check behaviour on real FER crops (the bundled sample) with synthetic defects."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from curate.audit import bench_defects as D
from curate.audit.api import run_checks
from curate.audit.base import AuditContext
from curate.audit.checks_learned import text_region
from curate.audit.faces import detect_face
from curate.settings import load_settings


@pytest.fixture(scope="module")
def faces(sample_ws_path):
    from curate.workspace import Workspace

    pix = np.asarray(Workspace(sample_ws_path).pixels())
    keep = pix.reshape(len(pix), -1).std(axis=1) > 25  # ordinary, non-blank crops
    return pix[keep]


def _scores(images, checks, overrides=None, seed=0):
    cfg = load_settings("audit", overrides)
    rows, _ = run_checks(images, [f"i{k}" for k in range(len(images))], checks, cfg, seed=seed)
    return {c: rows[rows["check"] == c] for c in checks}


def test_quality_checks_flag_degraded_real_crops_and_not_the_originals(faces):
    real = faces[:200]
    degraded = {
        "dark": (real * 0.15).astype(np.uint8),
        "light": (real * 0.25 + 185).astype(np.uint8),
        "low_contrast": (real * 0.15 + 100).astype(np.uint8),
        "blurry": np.stack([cv2.GaussianBlur(im, (0, 0), 3.0) for im in real]),
        "low_information": ((real // 86) * 120).astype(np.uint8),
    }
    clean = _scores(real, list(degraded))
    for name, imgs in degraded.items():
        bad = _scores(imgs, [name])[name]
        assert bad["flagged"].mean() >= 0.9, (name, bad["flagged"].mean())
        assert clean[name]["flagged"].mean() <= 0.05, (name, clean[name]["flagged"].mean())


def test_blank_check_catches_constant_and_noisy_flat_frames(faces):
    rng = np.random.default_rng(0)
    flat = np.stack([np.full((48, 48), v, np.uint8) for v in (0, 17, 128, 255)]
                    + [np.clip(90 + rng.normal(0, 1.2, (48, 48)), 0, 255).astype(np.uint8)])
    res = _scores(np.concatenate([flat, faces[:50]]), ["blank"])["blank"]
    assert res["flagged"].iloc[:5].all()
    assert not res["flagged"].iloc[5:].any()


@pytest.fixture(scope="module")
def learned(faces):
    """Learned-check scores on real crops plus injected defects (benchmark generators, not training ones)."""
    rng = np.random.default_rng(11)
    real = faces[:900]
    src = faces[900:1020]
    sets = {
        "watermark": np.stack([D.text_watermark(im, rng, 0.9) for im in src]),
        "misaligned": np.stack([D.shifted(im, rng) for im in src]),
        "non_face": np.stack([D.non_face_patch(48, rng) for _ in src]),
    }
    images = np.concatenate([real] + list(sets.values()))
    cfg = ["non_face.face_found_factor=1.0"]  # the bundled model's own ranking (detector fusion tested below)
    res = _scores(images, list(sets), cfg)
    return res, len(real), {k: len(v) for k, v in sets.items()}


def _auc(pos, neg):
    pos, neg = np.asarray(pos), np.asarray(neg)
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


@pytest.mark.slow
@pytest.mark.parametrize("check,min_auc", [("non_face", 0.9), ("misaligned", 0.8), ("watermark", 0.6)])
def test_learned_checks_rank_injected_defects_above_real_faces(learned, check, min_auc):
    res, n_real, sizes = learned
    start = n_real + sum(v for k, v in sizes.items() if list(sizes).index(k) < list(sizes).index(check))
    s = res[check]["score"].to_numpy()
    auc = _auc(s[start:start + sizes[check]], s[:n_real])
    assert auc >= min_auc, (check, auc)


def test_defect_model_trained_on_the_workspace_is_deterministic_for_a_seed(faces):
    cfg = ["model.weights=none", "model.n_clean=400", "model.n_per_defect=80", "model.min_per_defect=80",
           "model.epochs=1"]
    a = _scores(faces[:150], ["watermark"], cfg, seed=5)["watermark"]["score"].to_numpy()
    b = _scores(faces[:150], ["watermark"], cfg, seed=5)["watermark"]["score"].to_numpy()
    c = _scores(faces[:150], ["watermark"], cfg, seed=6)["watermark"]["score"].to_numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_mirror_averaging_scores_a_crop_and_its_mirror_alike(faces):
    import torch

    from curate.audit.defect_net import DefectModel
    from curate.train.models import build_model

    torch.manual_seed(0)
    net = build_model("vgg_fer", 6, width=0.125).eval()  # random weights: not mirror-symmetric by itself
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(300.0)  # spread the logits so that a crop and its mirror really differ
    crops = np.ascontiguousarray(faces[:64])
    mirrored = np.ascontiguousarray(crops[:, :, ::-1])
    averaged = DefectModel(net=net, mirror_tta=True)
    single = DefectModel(net=net, mirror_tta=False)
    np.testing.assert_allclose(averaged.predict_proba(crops), averaged.predict_proba(mirrored), atol=1e-5)
    assert np.abs(single.predict_proba(crops) - single.predict_proba(mirrored)).max() > 1e-3
    np.testing.assert_allclose(averaged.predict_proba(crops),
                               (single.predict_proba(crops) + single.predict_proba(mirrored)) / 2, atol=1e-6)


def test_a_failing_image_is_isolated(faces, monkeypatch):
    from curate.audit import checks_quality

    real = np.ascontiguousarray(faces[:20])
    original = checks_quality.quality_images

    def flaky(ctx: AuditContext, rows):
        if 7 in rows:
            raise ValueError("cannot decode image 7")
        return original(ctx, rows)

    monkeypatch.setattr(checks_quality, "quality_images", flaky)
    res = _scores(real, ["dark"])["dark"]
    assert np.isnan(res["score"].iloc[7]) and not res["flagged"].iloc[7]
    assert res["evidence"].iloc[7] == "error: ValueError: cannot decode image 7"
    assert res["score"].drop(index=res.index[7]).notna().all()


def test_detector_and_text_evidence_on_real_crops(faces):
    found = [detect_face(im) for im in faces[:40]]
    assert sum(b.found for b in found) >= 20  # Haar finds most upscaled real FER faces
    box = next(b for b in found if b.found)
    assert 0.4 <= box.scale(48) <= 1.3
    rng = np.random.default_rng(1)
    marked = faces[0].copy()
    cv2.putText(marked, "SAMPLE", (2, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1)
    assert text_region(marked).startswith("text-like region")
    assert rng is not None


def test_non_face_score_is_lowered_where_the_face_detector_finds_a_face(faces):
    images = np.ascontiguousarray(faces[:60])
    base = ["non_face.face_check_share=1.0", "non_face.fusion=false"]
    plain = _scores(images, ["non_face"], base + ["non_face.face_found_factor=1.0"])["non_face"]["score"].to_numpy()
    fused = _scores(images, ["non_face"], base + ["non_face.face_found_factor=0.1"])["non_face"]["score"].to_numpy()
    boxes = [detect_face(im) for im in images]
    filled = np.array([b.found and b.scale(48) >= 0.45 for b in boxes])
    assert filled.sum() >= 20 and (~filled).sum() >= 1
    np.testing.assert_allclose(fused[filled], 0.1 * plain[filled], rtol=1e-6)
    np.testing.assert_allclose(fused[~filled], plain[~filled], rtol=1e-6)


def test_benchmark_on_the_sample_writes_recall_per_defect_without_timing(sample_csv, tmp_path):
    from curate.audit.bench import run_bench

    out = tmp_path / "audit.md"
    result = run_bench(sample_csv, out=out, scratch=tmp_path / "scratch", per_type=8, limit=800, seed=0,
                       overrides=["model.adapt=never"], timing=False, quiet=True)
    assert "timing" not in result and set(result["halves"]) == {"tune", "report"}
    report = result["halves"]["report"]
    assert report["recall"]["blank"]["blank"]["at_threshold"] == 1.0  # blank frames: always flagged
    assert {"blank", "non_face_patch", "shifted", "wm_text_40_80"} <= set(report["recall"])
    assert all(e["n"] <= 8 for by_check in report["recall"].values() for e in by_check.values())
    text = out.read_text()
    assert "| blank | blank |" in text and "Not measured (`--no-timing`)." in text
    assert "model.adapt=never" in text  # the overrides are part of the record
    assert result["model"]["leak_free"] is False and "NOT verified" in text  # not the data it was trained on
    assert result["halves"]["report"]["model_choice"]["reason"] == "model.adapt is never"


def test_non_face_fusion_lifts_flat_placeholders_and_leaves_faces_alone(faces):
    import cv2 as _cv2

    from curate.audit.checks_learned import FUSION_FEATURES, fuse_non_face, non_face_features

    placeholder = np.full((48, 48), 205, np.uint8)  # a "..." placeholder, as FER2013 holds several
    _cv2.rectangle(placeholder, (8, 14), (40, 34), 120, -1)
    for x in (16, 24, 32):
        _cv2.circle(placeholder, (x, 24), 2, 250, -1)
    images = np.concatenate([placeholder[None], faces[:40]])
    fused = _scores(images, ["non_face"])["non_face"]
    alone = _scores(images, ["non_face"], ["non_face.fusion=false"])["non_face"]
    assert fused["flagged"].iloc[0] and fused["score"].iloc[0] > alone["score"].iloc[0]
    assert fused["flagged"].iloc[1:].mean() <= 0.05
    x = non_face_features(np.array([0.5, 0.5]), np.stack([placeholder, faces[0]]))
    assert x.shape == (2, len(FUSION_FEATURES)) and x[0, 1] > x[1, 1]  # low_information: placeholder higher
    w = {"bias": 0.0, "model_logit": 1.0, "low_information": 0.0, "blank": 0.0}
    np.testing.assert_allclose(fuse_non_face(x, w), [0.5, 0.5])  # identity weights: the model's probability


def test_mirror_share_averages_only_the_likeliest_defects(faces):
    from curate.audit.defect_net import DefectModel
    from curate.audit.defect_weights import BUNDLED_WEIGHTS, load_weights

    crops = np.ascontiguousarray(faces[:100])
    net = load_weights(BUNDLED_WEIGHTS).net
    single = DefectModel(net=net, mirror_tta=False).predict_proba(crops)
    full = DefectModel(net=net, mirror_tta=True).predict_proba(crops)
    part = DefectModel(net=net, mirror_tta=True, mirror_share=0.2).predict_proba(crops)
    top = (1 - single[:, 0]) >= np.quantile(1 - single[:, 0], 0.8)
    assert top.sum() >= 20
    np.testing.assert_allclose(part[top], full[top], atol=1e-5)
    np.testing.assert_allclose(part[~top], single[~top], atol=1e-6)
