"""tools/gpu_session.py: the device transfer format and the faiss stand-in it uses there."""
import importlib.util
import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_jpeg_mosaics_round_trip_faces_within_jpeg_noise(sample_ws):
    session = _load("gpu_session", TOOLS / "gpu_session.py")
    sample = np.asarray(sample_ws.pixels())
    pixels = np.concatenate([sample] * 3)[:4123]  # not a whole number of 4,000-tile mosaics
    data, offsets = session._encode_mosaics(pixels)
    back = session._decode_mosaics(data, offsets, len(pixels), pixels.shape[1])
    assert back.shape == pixels.shape and len(offsets) == 1 + -(-len(pixels) // 4000)
    err = back.astype(np.float32) - pixels
    assert np.sqrt((err ** 2).mean()) < 3.0 and np.abs(err).max() <= 40
    assert data.nbytes < 0.7 * pixels.nbytes
    rows = np.random.default_rng(0).choice(len(pixels) - 4000, 50, replace=False) + 4000  # the partial mosaic too
    other = np.roll(rows, 1)
    assert (np.abs(back[rows].astype(int) - pixels[rows]).mean(axis=(1, 2))
            < np.abs(back[rows].astype(int) - pixels[other]).mean(axis=(1, 2))).all()


def test_faiss_shim_matches_exact_inner_product_search():
    shim = _load("faiss_shim", TOOLS / "device_shims" / "faiss.py")
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    index = shim.IndexFlatIP(16)
    index.add(base[:200])
    index.add(base[200:])
    sims, nbrs = index.search(base[:7], 5)
    exact = base[:7] @ base.T
    np.testing.assert_array_equal(nbrs, np.argsort(-exact, axis=1)[:, :5])
    np.testing.assert_allclose(sims, np.sort(exact, axis=1)[:, ::-1][:, :5], rtol=1e-5, atol=1e-5)
    small = shim.IndexFlatIP(16)
    small.add(base[:2])
    sims, nbrs = small.search(base[:1], 4)  # fewer stored than asked: padded like faiss
    assert nbrs.tolist()[0][2:] == [-1, -1] and np.isneginf(sims[0, 2:]).all()
