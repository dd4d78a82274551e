"""Every FER model builds, runs forward on (B, 1, 48, 48) and gives a (B, D) embedding."""
import numpy as np
import pytest
import torch

from curate.config import ConfigError
from curate.train.models import MODEL_NAMES, build_from_recipe, build_model, count_parameters
from curate.train.recipes import available_recipes, load_recipe


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_forward_and_features(name):
    torch.manual_seed(0)
    model = build_model(name, 7, in_size=48, width=0.25).eval()
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        logits = model(x)
        feats = model.features(x)
    assert logits.shape == (3, 7)
    assert feats.ndim == 2 and feats.shape[0] == 3 and feats.shape[1] == model.embed_dim
    assert torch.isfinite(logits).all()
    assert count_parameters(model) > 1000


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_full_width_forward_40(name):
    model = build_model(name, 7, in_size=40).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 40, 40)).shape == (2, 7)


def test_unknown_model_refused():
    with pytest.raises(ValueError, match="known models"):
        build_model("alexnet", 7)
    with pytest.raises(ValueError, match="bad option"):
        build_model("vgg_fer", 7, depth=3)


def test_bundled_recipes_load_and_validate():
    names = available_recipes()
    assert {"cpu_fast", "gpu_vgg", "demo_tiny", "finetune_resnet18"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe["name"] == name
        build_from_recipe(recipe, 7)


def test_recipe_overrides_and_refusals(tmp_path):
    recipe = load_recipe("cpu_fast", ["epochs=2", "model_args.width=0.5"])
    assert recipe["epochs"] == 2 and recipe["model_args"]["width"] == 0.5
    assert recipe["model_args"]["dropout"] == 0.3  # untouched sibling kept
    with pytest.raises(ConfigError, match="unknown recipe key"):
        load_recipe("cpu_fast", ["epoks=2"])
    with pytest.raises(ConfigError, match="schedule"):
        load_recipe("cpu_fast", ["schedule=linear"])
    with pytest.raises(ConfigError, match="input_size"):
        load_recipe({"input_size": 56})
    with pytest.raises(ConfigError, match="unknown recipe"):
        load_recipe("no_such_recipe")
    path = tmp_path / "mine.yaml"
    path.write_text("model: resnet18_fer\nepochs: 1\n")
    assert load_recipe(path)["model"] == "resnet18_fer"
    assert load_recipe(path)["name"] == "mine"


def test_augment_shapes_and_determinism():
    from curate.train.augment import LEVELS, augment_batch, augment_params, to_float, tta_views

    x = to_float(torch.from_numpy(np.random.default_rng(0).integers(0, 255, (5, 48, 48), dtype=np.uint8)))
    for level in LEVELS:
        a = augment_batch(x, augment_params(level), 40, 48, torch.Generator().manual_seed(1))
        b = augment_batch(x, augment_params(level), 40, 48, torch.Generator().manual_seed(1))
        assert a.shape == (5, 1, 40, 40) and torch.equal(a, b)
        assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    none = augment_batch(x, augment_params("none"), 48, 48, torch.Generator().manual_seed(1))
    assert torch.equal(none, x)
    flipped = augment_batch(x, augment_params({"flip": 1.0}), 48, 48, torch.Generator().manual_seed(1))
    assert torch.allclose(flipped, torch.flip(x, dims=[-1]), atol=1e-5)
    assert len(tta_views(x, 40, 48)) == 10 and len(tta_views(x, 48, 48)) == 10
