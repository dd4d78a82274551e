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
