"""The defect model's weights files: the bundled model, the loader, adaptation and the train command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from curate.audit.defect_model import adapt_decision, defect_model_for
from curate.audit.defect_weights import BUNDLED_WEIGHTS, load_weights, save_weights, sidecar_path
from curate.audit.synthetic import DEFECT_CLASSES
from curate.settings import load_settings
from curate.errors import CurateError

TINY_TRAIN = ["model.n_clean=300", "model.n_per_defect=60", "model.min_per_defect=60", "model.epochs=1"]


@pytest.fixture(scope="module")
def crops(sample_ws_path):
    from curate.workspace import Workspace

    pix = np.asarray(Workspace(sample_ws_path).pixels())
    return np.ascontiguousarray(pix[pix.reshape(len(pix), -1).std(axis=1) > 25][:400])


def _model_cfg(*overrides: str) -> dict:
    return load_settings("audit", list(overrides) or None).model


def _no_training(monkeypatch):
    from curate.train import trainer

    def refuse(*a, **k):
        raise AssertionError("the bundled model must not train")

    monkeypatch.setattr(trainer, "fit", refuse)


def test_bundled_weights_load_with_the_documented_classes_and_predict_without_training(crops, monkeypatch):
    _no_training(monkeypatch)
    meta = json.loads(sidecar_path(BUNDLED_WEIGHTS).read_text())
    assert tuple(meta["classes"]) == DEFECT_CLASSES == ("clean", "watermark", "misaligned", "non_face", "cartoon",
                                                         "occlusion")
    for key in ("seed", "curate_version", "command", "model", "model_args", "image_size", "weights_sha256"):
        assert key in meta, key
    assert meta["training"]["workspace_pixels_sha256"] and meta["training"]["held_out"]["bench_report_half"]
    assert BUNDLED_WEIGHTS.stat().st_size < 1_000_000  # a small file in the package
    model = defect_model_for(crops[:64], _model_cfg(), seed=0)  # defaults: bundled, adapt auto
    assert model.classes == DEFECT_CLASSES and model.info["adapt"]["adapt"] is False
    assert "adapt_min_images" in model.info["adapt"]["reason"]  # 64 crops: too few to adapt
    p = model.predict_proba(crops[:64])
    assert p.shape == (64, 6) and np.allclose(p.sum(1), 1, atol=1e-4)
    assert np.median(p[:, 0]) > 0.8  # real FER faces: clean
    # a workspace of another size is resized on the fly
    big = np.stack([np.kron(c, np.ones((2, 2), np.uint8)) for c in crops[:16]])
    np.testing.assert_allclose(model.predict_proba(big), p[:16], atol=0.05)


def test_a_checkpoint_written_here_loads_through_the_same_code(tmp_path, crops):
    import torch

    from curate.audit.defect_net import DefectModel
    from curate.train.models import build_model

    torch.manual_seed(0)
    net = build_model("vgg_fer", 6, width=0.125).eval()
    path = save_weights(net, tmp_path / "tiny.pt", {"classes": list(DEFECT_CLASSES), "seed": 0})
    state = torch.load(path, weights_only=True)  # plain tensors only
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = defect_model_for(crops[:32], _model_cfg(f"model.weights={path}", "model.adapt=never"), seed=0)
    assert model.info["source"] == "loaded tiny.pt" and model.info["adapt"]["reason"] == "model.adapt is never"
    want = DefectModel(net=net).predict_proba(crops[:32])
    np.testing.assert_allclose(model.predict_proba(crops[:32]), want, atol=2e-3)  # float16 storage


def test_weights_none_still_trains_on_the_workspace(crops):
    model = defect_model_for(crops, _model_cfg("model.weights=none", *TINY_TRAIN), seed=0)
    assert model.info["source"].startswith("trained from scratch") and model.info["rounds"]
    assert model.predict_proba(crops[:8]).shape == (8, 6)


def test_missing_or_corrupt_weights_give_a_clear_error_naming_the_file(tmp_path, crops):
    import torch

    from curate.train.models import build_model

    missing = tmp_path / "nope.pt"
    with pytest.raises(CurateError, match="nope.pt: defect-model weights file not found"):
        defect_model_for(crops[:4], _model_cfg(f"model.weights={missing}"), seed=0)
    path = save_weights(build_model("vgg_fer", 6, width=0.125), tmp_path / "m.pt", {"classes": list(DEFECT_CLASSES)})
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(CurateError, match=r"m\.pt: .*corrupt"):
        load_weights(path)
    meta = json.loads(sidecar_path(path).read_text())
    from curate.audit.defect_weights import file_sha256

    sidecar_path(path).write_text(json.dumps(dict(meta, weights_sha256=file_sha256(path))))
    with pytest.raises(CurateError, match=r"m\.pt: cannot read defect-model weights"):
        load_weights(path)
    other = tmp_path / "other.pt"
    torch.save({"x": torch.zeros(2)}, other)
    with pytest.raises(CurateError, match=r"other\.json: sidecar .* not found"):
        load_weights(other)
    sidecar_path(other).write_text("{not json")
    with pytest.raises(CurateError, match=r"other\.json: unreadable"):
        load_weights(other)


def test_adapt_always_fine_tunes_a_copy_and_auto_skips_a_small_workspace(crops):
    cfg = _model_cfg("model.adapt=always", "model.adapt_n_clean=200", "model.adapt_per_defect=40",
                     "model.min_per_defect=40", "model.adapt_epochs=1")
    bundled = load_weights(BUNDLED_WEIGHTS)
    adapted = defect_model_for(crops, cfg, seed=0)
    assert adapted.info["adapt"]["adapt"] is True and adapted.info["adapted"]["steps"] >= 1
    assert adapted.net is not bundled.net
    assert not np.allclose(adapted.predict_proba(crops[:16]), bundled.predict_proba(crops[:16]))
    np.testing.assert_allclose(load_weights(BUNDLED_WEIGHTS).predict_proba(crops[:16]),
                               bundled.predict_proba(crops[:16]))  # the file itself is untouched
    small = adapt_decision(bundled, crops, _model_cfg(), seed=0)
    assert small["adapt"] is False and "adapt_min_images" in small["reason"]
    shifted = np.ascontiguousarray(crops[:, 12:36, 12:36].repeat(2, 1).repeat(2, 2))  # zoomed-in framing
    busy = adapt_decision(bundled, shifted, _model_cfg("model.adapt_min_images=100"), seed=0)
    assert busy["defect_rate"] > 0.1 and busy["adapt"] is True
    with pytest.raises(CurateError, match="model.adapt"):
        adapt_decision(bundled, crops, _model_cfg("model.adapt=sometimes"), seed=0)


def test_audit_model_train_writes_weights_that_audit_uses(sample_ws, tmp_path):
    from curate.cli import app
    from curate.findings import read_findings

    out = tmp_path / "models" / "ws-v1.pt"
    args = ["audit-model", "train", "-w", str(sample_ws.root), "--out", str(out), "--json", "--quiet"]
    for s in TINY_TRAIN:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["command"].startswith("curate audit-model train -w") and meta["training"]["images_used"] == len(
        sample_ws.manifest())
    res = CliRunner().invoke(app, ["audit-model", "info", str(out)])
    assert res.exit_code == 0 and "clean, watermark, misaligned" in res.output
    res = CliRunner().invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "watermark", "--quiet",
                                   "--set", f"model.weights={out}"])
    assert res.exit_code == 0, res.output
    assert len(read_findings(sample_ws)) == len(sample_ws.manifest())
    res = CliRunner().invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "watermark", "--quiet",
                                   "--set", f"model.weights={tmp_path / 'gone.pt'}"])
    assert res.exit_code == 1 and "gone.pt" in res.output
