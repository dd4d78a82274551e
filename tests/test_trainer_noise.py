"""Small-loss selection and snapshot predictions in the trainer (the OOF recipe's noise handling)."""
from __future__ import annotations

import numpy as np
import torch

from curate.train.recipes import load_recipe
from curate.train.trainer import fit, small_loss_mask


def test_small_loss_mask_drops_the_highest_losses():
    losses = torch.tensor([0.1, 5.0, 0.3, 2.0, 0.2, 0.4, 0.5, 0.6, 0.7, 9.0])
    keep = small_loss_mask(losses, 0.2)
    assert keep.tolist() == [True, False, True, True, True, True, True, True, True, False]
    assert small_loss_mask(losses, 0.0).all()
    assert small_loss_mask(losses[:1], 0.5).all()      # never an empty batch


def test_fit_returns_the_mean_of_the_last_epochs_predictions():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (96, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 3, 96)
    held_out = rng.integers(0, 255, (20, 48, 48), dtype=np.uint8)
    recipe = load_recipe("demo_tiny", {"epochs": 3, "snapshots": 2, "small_loss_drop": 0.25, "small_loss_warmup": 1})
    result = fit(images, labels, recipe, num_classes=3, seed=0, device="cpu", quiet=True, snapshot_images=held_out)
    assert result.snapshot_probs.shape == (20, 3)
    np.testing.assert_allclose(result.snapshot_probs.sum(1), 1.0, atol=1e-5)
    plain = fit(images, labels, load_recipe("demo_tiny", {"epochs": 3}), num_classes=3, seed=0, device="cpu",
                quiet=True, snapshot_images=held_out)
    assert plain.snapshot_probs is None                  # snapshots 0: nothing predicted
    first = next(iter(result.model.state_dict().values()))
    assert not torch.equal(first, next(iter(plain.model.state_dict().values())))   # small-loss changed training


def test_soft_targets_steer_training_and_are_checked():
    """One-hot soft targets train exactly as the labels do; targets that move every image's mass to
    another class train a model that predicts that class."""
    import pytest

    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (96, 48, 48), dtype=np.uint8)
    labels = np.tile(np.arange(3), 32)
    recipe = load_recipe("demo_tiny", {"epochs": 2, "label_smoothing": 0.0, "tta": False})
    plain = fit(images, labels, recipe, num_classes=3, seed=0, device="cpu", quiet=True)
    onehot = fit(images, labels, recipe, num_classes=3, seed=0, device="cpu", quiet=True,
                 soft_targets=np.eye(3, dtype=np.float32)[labels])
    for a, b in zip(plain.model.state_dict().values(), onehot.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    towards_2 = np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (96, 1))
    steered = fit(images, labels, load_recipe("demo_tiny", {"epochs": 4, "lr": 0.05}), num_classes=3, seed=0,
                  device="cpu", quiet=True, soft_targets=towards_2)
    from curate.train.trainer import predict_proba

    pred = predict_proba(steered.model, images, device="cpu").argmax(1)
    assert (pred == 2).mean() > 0.9
    with pytest.raises(ValueError, match="shape"):
        fit(images, labels, recipe, num_classes=3, seed=0, device="cpu", quiet=True, soft_targets=towards_2[:10])
    with pytest.raises(ValueError, match="summing to 1"):
        fit(images, labels, recipe, num_classes=3, seed=0, device="cpu", quiet=True, soft_targets=towards_2 * 2)


def test_min_steps_raises_epochs_for_a_smaller_split_only():
    """A split made smaller by cleaning trains for as many optimizer steps as ``min_steps`` asks; a split
    already big enough, or ``min_steps`` 0, keeps the recipe's epochs."""
    import pytest

    from curate.errors import ConfigError
    from curate.train.trainer import epochs_for_min_steps

    recipe = load_recipe("demo_tiny", {"epochs": 3, "batch_size": 32, "min_steps": 12})
    assert epochs_for_min_steps(recipe, 64)["epochs"] == 6        # 2 steps an epoch -> 6 epochs
    assert epochs_for_min_steps(recipe, 65)["epochs"] == 4        # 3 steps an epoch -> 4 epochs
    assert epochs_for_min_steps(recipe, 200)["epochs"] == 3       # 7 steps x 3 epochs already >= 12
    assert epochs_for_min_steps(recipe | {"min_steps": 0}, 10)["epochs"] == 3
    rng = np.random.default_rng(2)
    images = rng.integers(0, 255, (64, 48, 48), dtype=np.uint8)
    result = fit(images, np.tile(np.arange(2), 32), recipe, num_classes=2, seed=0, device="cpu", quiet=True)
    assert len(result.history) == 6 and result.recipe["epochs"] == 6
    for bad in (-1, 2.5, True, "cleaned"):
        with pytest.raises(ConfigError, match="min_steps must be an integer >= 0 or raw"):
            load_recipe("demo_tiny", {"min_steps": bad})
    assert epochs_for_min_steps(recipe | {"min_steps": "raw"}, 10)["epochs"] == 3  # raw: resolved by train-eval only
