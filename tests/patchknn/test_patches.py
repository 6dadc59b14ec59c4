"""Patch extraction, sampling and streamed moments against direct computations."""

import numpy as np
import pytest
import torch

from patchbook.patchknn import patches

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (7, 10, 9, 3), dtype=np.uint8)


def test_to_tensor_layout_and_range(images):
    t = patches.to_tensor(images)
    assert t.shape == (7, 3, 10, 9) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert t[2, 1, 4, 5] == pytest.approx(images[2, 4, 5, 1] / 255)
    assert patches.image_shape(images) == patches.image_shape(t) == (3, 10, 9)


@pytest.mark.parametrize("stride", [1, 2])
def test_extract_patches_matches_slicing(images, stride):
    x = patches.to_tensor(images)
    Q = 4
    p = patches.extract_patches(x, Q, stride)
    ph, pw = patches.n_positions(10, Q, stride), patches.n_positions(9, Q, stride)
    assert p.shape == (7, ph * pw, 3 * Q * Q)
    for n, i, j in [(0, 0, 0), (3, ph - 1, pw - 1), (6, 1, 2)]:
        want = x[n, :, i * stride:i * stride + Q, j * stride:j * stride + Q].reshape(-1)  # (channel, row, col)
        assert torch.equal(p[n, i * pw + j], want)


def test_n_positions_errors():
    assert patches.n_positions(32, 6) == 27
    with pytest.raises(ValueError):
        patches.n_positions(5, 6)


def test_streamed_moments_equal_direct(images):
    x = patches.to_tensor(images).double()
    p = patches.extract_patches(x, 3).reshape(-1, 27)
    m = patches.patch_moments(images, 3, batch_size=2)  # several batches
    assert m.count == p.shape[0]
    torch.testing.assert_close(m.mean, p.mean(0), rtol=0, atol=1e-6)
    pc = p - p.mean(0)
    torch.testing.assert_close(m.cov, pc.T @ pc / len(p), rtol=0, atol=1e-6)
    # normalisation is applied before the patches are taken
    m2 = patches.patch_moments(images, 3, batch_size=3, normalize=lambda t: 2 * t + 1)
    torch.testing.assert_close(m2.mean, 2 * m.mean + 1, rtol=0, atol=1e-5)
    torch.testing.assert_close(m2.cov, 4 * m.cov, rtol=0, atol=1e-5)


@pytest.mark.parametrize("Q", [1, 2, 3, 6, 9])
def test_row_moments_equal_explicit_patches(Q):
    """The stride-1 row-segment route against the explicit patches, on
    non-square images, with Q from 1 to the full height (one patch row)."""
    imgs = np.random.default_rng(Q).integers(0, 256, (5, 9, 11, 2), dtype=np.uint8)
    x = patches.to_tensor(imgs).double()
    p = patches.extract_patches(x, Q).reshape(-1, 2 * Q * Q)
    pc = p - p.mean(0)
    for method in ("rows", "patches"):
        m = patches.patch_moments(imgs, Q, batch_size=2, method=method)
        assert m.count == p.shape[0] == 5 * (9 - Q + 1) * (11 - Q + 1)
        torch.testing.assert_close(m.mean, p.mean(0), rtol=0, atol=1e-6)
        torch.testing.assert_close(m.cov, pc.T @ pc / len(p), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="stride 1"):
        patches.patch_moments(imgs, Q, stride=2, method="rows")


def test_moments_reject_mixed_sizes():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = np.zeros((2, 9, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="one size"):
        patches.patch_moments(_Mixed([a, b]), 3, batch_size=2)


class _Mixed:
    """Two batches of different image sizes behind one sequence."""

    def __init__(self, parts):
        self.parts = parts

    def __len__(self):
        return sum(len(p) for p in self.parts)

    def __getitem__(self, sl):
        return self.parts[sl.start // len(self.parts[0])]


def test_moments_cache_round_trip(images):
    m = patches.patch_moments(images, 3)
    m2 = patches.PatchMoments.from_arrays(m.to_arrays())
    assert torch.equal(m.mean, m2.mean) and torch.equal(m.cov, m2.cov) and m.count == m2.count


def test_sample_patches_are_real_distinct_and_seeded(images):
    p, idx = patches.sample_patches(images, 4, 50, seed=3, return_index=True)
    assert p.shape == (50, 48)
    x = patches.to_tensor(images)
    for k in range(50):
        r, c = idx.row[k], idx.col[k]
        assert torch.equal(p[k], x[idx.image[k], :, r:r + 4, c:c + 4].reshape(-1))
    pairs = set(zip(idx.image.tolist(), idx.row.tolist(), idx.col.tolist()))
    assert len(pairs) == 50  # without replacement
    assert torch.equal(p, patches.sample_patches(images, 4, 50, seed=3))
    assert not torch.equal(p, patches.sample_patches(images, 4, 50, seed=4))
    # same patches from the tensor layout
    assert torch.equal(p, patches.sample_patches(x, 4, 50, seed=3))
    with pytest.raises(ValueError):
        patches.sample_patches(images, 4, 7 * 7 * 6 + 1)


def test_sample_patches_cover_positions_uniformly():
    # all (image, position) pairs equally likely: positions of 2,000 draws
    # among 5 x 5 = 25 positions of 100 images are close to uniform
    idx = patches.sample_patch_index(100, 8, 8, 4, 2000, seed=0)
    counts = np.bincount(idx.row * 5 + idx.col, minlength=25)
    assert counts.min() > 45 and counts.max() < 120
    assert np.bincount(idx.image, minlength=100).max() < 45


def test_to_tensor_is_the_one_checked_conversion(images):
    """Integer pixel values in any dtype and layout are divided by 255,
    floats in [0, 1] kept; anything else is a one-line error (issue 18)."""
    want = patches.to_tensor(images)
    t = torch.from_numpy(images).permute(0, 3, 1, 2)
    for same in (images.astype(np.int64), images.astype(np.int32), t, t.long(), want.double(),
                 images.astype(np.float64) / 255):
        torch.testing.assert_close(patches.to_tensor(same), want, rtol=0, atol=1e-7)
    assert patches.to_tensor(want) is want                                 # floats in [0, 1]: untouched
    bad = {
        "floats in [0, 255]": (images.astype(np.float32), r"float images must be in \[0, 1\], got values in "
                                                          r"\[0, 255\] \(pixel values 0-255\? divide by 255"),
        "negative floats": (want - 0.5, r"must be in \[0, 1\]"),
        "NaN": (torch.where(want > 0.5, float("nan"), want), "NaN or infinite"),
        "inf": (np.full((1, 4, 4, 3), np.inf), "NaN or infinite"),
        "16-bit values": (images.astype(np.uint16) * 256, "pixel values 0-255, got values in"),
        "negative integers": (t.long() - 1, "pixel values 0-255"),
        "booleans": (t > 100, "boolean"),
        "3 dimensions": (images[..., 0], "4 dimensions"),
    }
    for what, (x, match) in bad.items():
        with pytest.raises(ValueError, match=match):
            patches.to_tensor(x)
    with pytest.raises(ValueError, match="1 channel"):
        patches.to_tensor(images[..., :1], channels=3)
    with pytest.raises(TypeError):
        patches.to_tensor(images.tolist())


def test_patches_of_a_uint8_tensor_are_in_zero_one(images):
    """gather_patches divided numpy uint8 by 255 but not a uint8 tensor."""
    t = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    assert torch.equal(patches.sample_patches(t, 4, 30, seed=2), patches.sample_patches(images, 4, 30, seed=2))
