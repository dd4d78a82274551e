"""The representative-picking quality score: exact against a plain reference, the same in every code path."""
import numpy as np
import pytest

from curate.dedupe.hashing import hash_images
from curate.dedupe.quality import block_quality, quality_score


@pytest.fixture(scope="module")
def sample_images(sample_ws_path):
    from curate.workspace import Workspace

    return np.ascontiguousarray(Workspace.open(sample_ws_path).pixels())


def _reference(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float64)
    lap = (4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:])
    return x.reshape(len(x), -1).std(axis=1) + 0.5 * lap.reshape(len(x), -1).std(axis=1)


@pytest.mark.parametrize("shape", [(48, 48), (7, 5), (3, 3), (64, 40)])
def test_block_quality_matches_reference(shape):
    rng = np.random.default_rng(sum(shape))
    images = rng.integers(0, 256, (300, *shape), dtype=np.uint8)
    images[0] = 0  # blank
    images[1] = np.where(np.indices(shape).sum(axis=0) % 2, 255, 0)  # checkerboard: the largest Laplacian
    np.testing.assert_allclose(block_quality(images), _reference(images), rtol=1e-6, atol=1e-4)


def test_sharper_and_higher_contrast_scores_higher(sample_images):
    from scipy.ndimage import gaussian_filter

    face = sample_images[sample_images.reshape(len(sample_images), -1).std(axis=1) > 20][:64]
    blurred = np.stack([gaussian_filter(x.astype(float), 1.5) for x in face]).round().astype(np.uint8)
    flat = (face.astype(float) * 0.4 + 76).round().astype(np.uint8)
    q, qb, qf = block_quality(face), block_quality(blurred), block_quality(flat)
    assert (q > qb).all() and (q > qf).all()


def test_every_path_gives_the_same_scores(sample_images):
    images = np.ascontiguousarray(sample_images[:700])
    rows = np.array([5, 699, 0, 17, 17, 300])
    full = block_quality(images)
    np.testing.assert_array_equal(quality_score(images), full)
    np.testing.assert_array_equal(quality_score(images, rows), full[rows])
    filled = np.full(len(images), np.nan, np.float32)
    hash_images(images, "phash", mirror=True, quality_out=filled)
    np.testing.assert_array_equal(filled, full)
    with pytest.raises(ValueError, match="quality needs images of at least 3x3"):
        block_quality(np.zeros((2, 2, 9), np.uint8))
