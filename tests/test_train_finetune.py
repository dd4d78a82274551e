"""Fine-tuning a pretrained backbone from a local checkpoint the test writes itself (never a download):
the weights are really used, the split's class subset makes the head and the metrics, bad files
give clear errors; grey inputs are replicated to the backbone's three channels."""
import json

import numpy as np
import pytest
import torch

from curate.config import ConfigError
from curate.errors import CurateError
from curate.split.api import build_split
from curate.train.api import train_eval
from curate.train.models import build_model, load_backbone_checkpoint
from curate.train.recipes import load_recipe
from curate.train.trainer import fit, load_model, predict_proba

from test_split_classes import make_photo_workspace

# 1 epoch at 32 px, all of it with the stem and layer1 frozen, no TTA: a couple of seconds on a CPU
FAST = ["epochs=1", "num_threads=1", "image_size=36", "input_size=32", "batch_size=16", "tta=false",
        "freeze=[conv1, bn1, layer1]", "freeze_epochs=1", "augment=low"]


@pytest.fixture(scope="module")
def resnet18_checkpoint(tmp_path_factory):
    """A torchvision-style resnet18 state_dict (ImageNet head fc: 1000 classes): another seed than any
    model the trainer builds, and batch-norm statistics and scales that no fresh model has."""
    import torchvision

    torch.manual_seed(123)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "resnet18-test.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture()
def photo_split(tmp_path):
    ws = make_photo_workspace(tmp_path / "ws")
    build_split(ws, classes=["happy", "sad", "neutral"], quiet=True)
    return ws


def test_finetune_uses_the_checkpoint_and_the_split_classes(photo_split, resnet18_checkpoint):
    ws = photo_split
    path, state = resnet18_checkpoint
    s = train_eval(ws, "cleaned", recipe="finetune_resnet18", overrides=FAST + [f"checkpoint={path}"],
                   name="ft", quiet=True)
    out = ws.path("runs/ft")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["happy", "sad", "neutral"] and np.array(metrics["confusion"]).shape == (3, 3)
    assert set(metrics["per_class"]) == {"happy", "sad", "neutral"} and s["n_eval"] == np.sum(metrics["confusion"])
    assert metrics["input"] == "colour aligned crops 32x32" and metrics["model"] == "backbone"
    assert metrics["pretrained"]["checkpoint"] == str(path) and metrics["pretrained"]["tensors"] == 120
    assert metrics["pretrained"]["head_left_out"] == ["fc.bias", "fc.weight"]
    model = load_model(out)
    assert model.arch == "resnet18" and model.classifier.out_features == 3
    trained = model.backbone.state_dict()
    # frozen for the whole (one-epoch) run: exactly the checkpoint's, running statistics included
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight"):
        assert torch.equal(trained[key], state[key]), key
    # trained: moved, but only a little from the checkpoint (a fresh init would be far away)
    moved = trained["layer4.1.conv2.weight"]
    assert not torch.equal(moved, state["layer4.1.conv2.weight"])
    assert float((moved - state["layer4.1.conv2.weight"]).abs().max()) < 0.01
    pred = ws.read_parquet("runs/ft/predictions.parquet")
    assert {c for c in pred.columns if c.startswith("p_")} == {"p_happy", "p_sad", "p_neutral"}
    assert set(pred["pred"]) <= {"happy", "sad", "neutral"} and "fear" not in set(pred["label"])


def test_checkpoint_null_trains_from_scratch_and_says_so(caplog):
    # another torchvision architecture (its classifier's last Linear is the head replaced)
    recipe = load_recipe("finetune_resnet18", FAST + ["backbone=mobilenet_v3_small", "freeze_epochs=0"])
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    with caplog.at_level("INFO", logger="curate"):  # said through the curate logger
        result = fit(x, np.array([0, 1, 2, 0, 1, 2, 0, 1]), recipe, num_classes=3, quiet=False)
    err = caplog.text
    assert "checkpoint null - training from scratch" in err and "nothing is downloaded" in err
    assert result.pretrained["checkpoint"] is None and result.model.classifier.out_features == 3
    assert result.model.head_prefix == "classifier.3"


def test_wrong_checkpoints_give_clear_errors(photo_split, resnet18_checkpoint, tmp_path):
    path, state = resnet18_checkpoint
    missing = tmp_path / "nope" / "resnet18.pth"
    with pytest.raises(CurateError, match=f"checkpoint {missing}: file not found"):
        train_eval(photo_split, "cleaned", recipe="finetune_resnet18", overrides=FAST + [f"checkpoint={missing}"],
                   name="a", quiet=True)
    other = tmp_path / "other.pth"  # another architecture's file: keys differ
    torch.save(build_model("baseline_cnn", 7, width=0.25).state_dict(), other)
    # 100 missing: resnet18's 120 tensors but for the 20 num_batches_tracked, which older files lack too
    with pytest.raises(CurateError, match=r"other\.pth does not match backbone resnet18: 100 backbone tensor\(s\) "
                                          r"missing \(conv1.weight, .*20 unexpected \(trunk"):
        train_eval(photo_split, "cleaned", recipe="finetune_resnet18", overrides=FAST + [f"checkpoint={other}"],
                   name="b", quiet=True)
    bad = dict(state, **{"conv1.weight": torch.zeros(64, 1, 7, 7)})  # a grey-stem variant: shape differs
    shaped = tmp_path / "shaped.pth"
    torch.save(bad, shaped)
    with pytest.raises(CurateError, match=r"1 of another shape \(conv1.weight \(64, 1, 7, 7\) vs \(64, 3, 7, 7\)"):
        train_eval(photo_split, "cleaned", recipe="finetune_resnet18", overrides=FAST + [f"checkpoint={shaped}"],
                   name="c", quiet=True)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CurateError, match="junk.pth: not a readable PyTorch state_dict"):
        train_eval(photo_split, "cleaned", recipe="finetune_resnet18", overrides=FAST + [f"checkpoint={junk}"],
                   name="d", quiet=True)
    assert not photo_split.path("runs/a").exists()


def test_backbone_recipe_refusals():
    with pytest.raises(ConfigError, match="needs model: backbone"):
        load_recipe("cpu_fast", ["checkpoint=/x.pth"])
    with pytest.raises(ConfigError, match="not a torchvision classification model"):
        load_recipe("finetune_resnet18", ["backbone=resnet19"])
    with pytest.raises(ConfigError, match="freeze must be"):
        load_recipe("finetune_resnet18", ["freeze=3"])
    x = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(ConfigError, match=r"no layer 'layer9' in resnet18 \(its top-level layers: conv1, bn1"):
        fit(x, np.array([0, 1, 0, 1]), load_recipe("finetune_resnet18", FAST + ["freeze=[layer9]"]), num_classes=2,
            quiet=True)


def test_grey_input_is_replicated_to_three_normalised_channels_and_colour_greyed_for_fer_nets():
    torch.manual_seed(0)
    model = build_model("backbone", 3, in_size=32, arch="resnet18").eval()
    model.image_size = 32
    grey = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    colour = np.repeat(grey[..., None], 3, axis=-1)
    p_grey = predict_proba(model, grey, device="cpu")
    np.testing.assert_allclose(p_grey, predict_proba(model, colour, device="cpu"), atol=1e-5)
    assert p_grey.shape == (5, 3)
    fer = build_model("baseline_cnn", 3, in_size=32, width=0.25).eval()  # a grey net fed colour: luminance
    np.testing.assert_allclose(predict_proba(fer, colour, device="cpu"), predict_proba(fer, grey, device="cpu"),
                               atol=1e-5)


def test_timm_safetensors_and_open_clip_tower_checkpoints(tmp_path):
    import open_clip
    import timm
    from safetensors.torch import save_file

    # timm publishes resnet18 with torchvision's key names, as .safetensors
    src = timm.create_model("resnet18", pretrained=False)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "model.safetensors"))
    net = build_model("backbone", 2, in_size=32, arch="resnet18")
    info = load_backbone_checkpoint(net, tmp_path / "model.safetensors")
    assert info["tensors"] == 120 and torch.equal(net.backbone.conv1.weight, src.conv1.weight)
    # an open_clip checkpoint (the whole CLIP; its image tower is taken), on a tiny model config
    (tmp_path / "curate-test-tiny-clip.json").write_text(json.dumps({
        "embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 1, "layers": 1}}))
    open_clip.add_model_config(tmp_path / "curate-test-tiny-clip.json")
    clip = open_clip.create_model("curate-test-tiny-clip", pretrained=None)
    torch.save(clip.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    recipe = load_recipe("finetune_resnet18", FAST + ["backbone=open_clip:curate-test-tiny-clip", "freeze=backbone",
                                                      f"checkpoint={tmp_path / 'open_clip_pytorch_model.bin'}"])
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    result = fit(x, np.array([0, 1] * 4), recipe, num_classes=2, quiet=True)
    assert result.pretrained["tensors"] == len(clip.visual.state_dict())
    assert torch.equal(result.model.backbone.conv1.weight, clip.visual.conv1.weight)  # frozen: as loaded
    assert result.model.classifier.out_features == 2
