"""The trainer on real FER2013 sample faces: learning, determinism, resume, predictions, embeddings."""
import json

import numpy as np
import pandas as pd
import pytest

from curate.train.trainer import (ResumeMismatch, class_weight_vector, embed, fit, load_model, predict_proba,
                                  save_model)

FAST = {"model": "baseline_cnn", "model_args": {"width": 0.5}, "epochs": 2, "batch_size": 32,
        "optimizer": "adamw", "lr": 0.003, "augment": "low", "tta": False, "num_threads": 1}


@pytest.fixture(scope="module")
def sample_arrays(sample_csv):
    df = pd.read_csv(sample_csv)
    images = np.stack([np.array(p.split(), dtype=np.uint8).reshape(48, 48) for p in df["pixels"]])
    labels = df["emotion"].to_numpy(np.int64)
    train = (df["Usage"] == "Training").to_numpy()
    return images[train], labels[train], images[~train], labels[~train]


def test_two_epoch_fit_learns_above_chance(sample_arrays):
    x, y, xv, yv = sample_arrays
    result = fit(x, y, FAST, val_images=xv, val_labels=yv, num_classes=7, seed=0, quiet=True)
    probs = predict_proba(result.model, x)
    acc = float((probs.argmax(1) == y).mean())
    majority = np.bincount(y).max() / len(y)
    assert acc > majority + 0.02, (acc, majority)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert len(result.history) == 2 and {"val_acc", "val_loss", "images_per_s"} <= set(result.history[0])
    assert probs.shape == (len(x), 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_same_seed_same_model_on_cpu(sample_arrays):
    x, y, _, _ = sample_arrays
    a = fit(x[:256], y[:256], FAST, num_classes=7, seed=3, quiet=True)
    b = fit(x[:256], y[:256], FAST, num_classes=7, seed=3, quiet=True)
    c = fit(x[:256], y[:256], FAST, num_classes=7, seed=4, quiet=True)
    pa, pb, pc = (predict_proba(r.model, x[:64]) for r in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)


def test_resume_after_kill_equals_uninterrupted(sample_arrays, tmp_path):
    x, y, xv, yv = sample_arrays
    x, y = x[:256], y[:256]
    recipe = dict(FAST, epochs=3)
    full = fit(x, y, recipe, val_images=xv[:64], val_labels=yv[:64], num_classes=7, seed=1, quiet=True,
               checkpoint_dir=tmp_path / "full", record_dynamics=True)

    class Killed(Exception):
        pass

    def kill_after_two(row):
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(x, y, recipe, val_images=xv[:64], val_labels=yv[:64], num_classes=7, seed=1, quiet=True,
            checkpoint_dir=tmp_path / "cut", on_epoch=kill_after_two, record_dynamics=True)
    assert json.loads((tmp_path / "cut" / "last.json").read_text())["epoch"] == 2
    resumed = fit(x, y, recipe, val_images=xv[:64], val_labels=yv[:64], num_classes=7, seed=1, quiet=True,
                  checkpoint_dir=tmp_path / "cut", resume=True, record_dynamics=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    np.testing.assert_array_equal(predict_proba(resumed.model, xv[:32]), predict_proba(full.model, xv[:32]))
    np.testing.assert_array_equal(resumed.dynamics, full.dynamics)
    with pytest.raises(ResumeMismatch, match="seed"):
        fit(x, y, recipe, val_images=xv[:64], val_labels=yv[:64], num_classes=7, seed=2, quiet=True,
            checkpoint_dir=tmp_path / "cut", resume=True)


def test_dynamics_embeddings_tta_and_save_load(sample_arrays, tmp_path):
    x, y, xv, _ = sample_arrays
    result = fit(x[:128], y[:128], dict(FAST, epochs=2), num_classes=7, seed=0, quiet=True,
                 record_dynamics=True, sample_weights=np.linspace(0.5, 1.5, 128))
    assert result.dynamics.shape == (2, 128) and np.isfinite(result.dynamics).all()
    emb = embed(result.model, xv[:20])
    assert emb.shape == (20, result.model.embed_dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    tta = predict_proba(result.model, xv[:20], tta=True)
    np.testing.assert_allclose(tta.sum(1), 1.0, atol=1e-4)
    save_model(result.model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(predict_proba(again, xv[:20]), predict_proba(result.model, xv[:20]), atol=1e-6)


def test_class_weights():
    labels = np.array([0] * 80 + [1] * 20)
    w = class_weight_vector(labels, 3, "balanced")
    assert w[1] / w[0] == pytest.approx(4.0) and w[2] == 0.0
    assert class_weight_vector(labels, 3, "sqrt")[1] / class_weight_vector(labels, 3, "sqrt")[0] == pytest.approx(2.0)
    assert (class_weight_vector(labels, 3, "none") == 1).all()


def test_bad_labels_refused(sample_arrays):
    x, y, _, _ = sample_arrays
    with pytest.raises(ValueError, match="labels must lie"):
        fit(x[:10], np.full(10, 9), FAST, num_classes=7, quiet=True)
