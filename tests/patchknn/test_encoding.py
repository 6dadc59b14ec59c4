"""Patch k-NN codes against a brute-force reference, pooling shapes, variants."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from patchbook.patchknn import knn, patches
from patchbook.patchknn.encoding import (
    PatchEncoder,
    knn_code_reference,
    pooled_size,
    resolve_k,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


@pytest.fixture(scope="module")
def images():
    # smooth-ish random images, so the patch covariance is far from isotropic
    g = np.random.default_rng(0)
    x = g.normal(size=(24, 14, 14, 3)).cumsum(1).cumsum(2)
    x = (x - x.min()) / (x.max() - x.min()) * 255
    return x.astype(np.uint8)


@pytest.fixture(scope="module")
def encoder(images):
    return PatchEncoder(n_atoms=37, patch=4, k=0.4, lam=1e-3, pool=3, pool_stride=2).fit(images)


def test_resolve_k():
    assert resolve_k(0.4, 2048) == 819 and resolve_k(7, 10) == 7 and resolve_k(1.0, 10) == 10
    with pytest.raises(ValueError):
        resolve_k(11, 10)
    with pytest.raises(ValueError):
        resolve_k(1.5, 10)


def test_codes_match_brute_force_reference(images, encoder):
    x = patches.to_tensor(images[:4])
    P = patches.extract_patches(x, 4).reshape(-1, 48)
    plus, minus = encoder.codes(x)
    K = encoder.k_
    assert K == round(0.4 * 37)
    ref = knn_code_reference(P, encoder.atoms_, encoder.whitener_, K)
    assert plus.dtype == torch.bool and torch.equal(plus, ref)
    assert (plus.sum(1) == K).all() and (minus.sum(1) == K).all()
    # the second half is the code of -W(x - mu): the patch reflected through the mean
    mu = encoder.whitener_.mean_.float()
    assert torch.equal(minus, knn_code_reference(2 * mu - P, encoder.atoms_, encoder.whitener_, K))


def test_scores_are_distances_up_to_a_row_constant(images, encoder):
    x = patches.to_tensor(images[:2])
    P = patches.extract_patches(x, 4).reshape(-1, 48).double()
    s = encoder.scores(x).double()
    wx = encoder.whitener_.transform(P)
    d2 = torch.cdist(wx, encoder.whitener_.transform(encoder.atoms_.double())) ** 2
    diff = d2 - s
    torch.testing.assert_close(diff, (wx * wx).sum(1, keepdim=True).expand_as(diff), rtol=1e-4, atol=1e-2)


def test_no_whitening_is_euclidean_knn(images):
    enc = PatchEncoder(n_atoms=20, patch=3, k=5, whitening="none", both_signs=False).fit(images)
    x = patches.to_tensor(images[:2])
    P = patches.extract_patches(x, 3).reshape(-1, 27).double()
    d2 = torch.cdist(P, enc.atoms_.double())
    order = torch.sort(d2, dim=1, stable=True).indices[:, :5]
    ref = torch.zeros_like(d2, dtype=torch.bool).scatter_(1, order, True)
    (code,) = enc.codes(x)
    assert torch.equal(code, ref)


def test_ties_broken_towards_lower_atom_index():
    # integer scores with many ties: the selection the encoder relies on
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 4, (300, 17), generator=g).float()
    for k in (0, 1, 6, 17):
        mask = knn.knn_mask(s, k)
        assert torch.equal(mask, knn.knn_mask_reference(s, k))
        assert (mask.sum(1) == k).all()
    # rows of equal scores: the first k atoms
    assert torch.equal(knn.knn_mask(torch.zeros(2, 5), 2), torch.tensor([[1, 1, 0, 0, 0]] * 2).bool())


def test_duplicate_atoms_give_deterministic_codes(images):
    enc = PatchEncoder(n_atoms=12, patch=3, k=5, both_signs=False).fit(images)
    atoms = torch.cat([enc.atoms_[:6], enc.atoms_[:6]])  # every atom twice
    enc.set_atoms(atoms)
    x = patches.to_tensor(images[:2])
    (code,) = enc.codes(x)
    assert (code.sum(1) == 5).all()
    # the first copy of an atom is chosen whenever its twin is
    assert not (code[:, 6:] & ~code[:, :6]).any()
    assert torch.equal(code, enc.codes(x)[0])


def test_soft_code_tends_to_hard_code(images, encoder):
    x = patches.to_tensor(images[:2])
    hard = torch.cat([c.float() for c in encoder.codes(x)], 1)
    errs = []
    for s in (10.0, 1.0, 1e-2, 1e-5):
        soft_enc = PatchEncoder(**{**encoder.get_params(), "soft": s})
        soft_enc.whitener_ = encoder.whitener_
        soft_enc.set_atoms(encoder.atoms_)
        soft = torch.cat(soft_enc.codes(x), 1)
        assert float(soft.min()) >= 0 and float(soft.max()) <= 1
        errs.append(float((soft - hard).abs().mean()))
    assert errs == sorted(errs, reverse=True) and errs[-1] < 1e-3 and errs[0] > 0.1


@pytest.mark.parametrize("size,patch,pool,stride,ceil,want", [
    (32, 6, 5, 3, True, 9), (32, 6, 5, 3, False, 8), (32, 6, 7, 4, False, 6), (14, 4, 3, 2, True, 5)])
def test_pooled_sizes(size, patch, pool, stride, ceil, want):
    h = size - patch + 1
    assert pooled_size(h, pool, stride, ceil) == want
    assert F.avg_pool2d(torch.zeros(1, 1, h, h), pool, stride, ceil_mode=ceil).shape[-1] == want


def test_transform_shapes_pooling_and_counts():
    imgs = np.random.default_rng(2).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    enc = PatchEncoder(n_atoms=16, patch=6, k=0.4).fit(imgs)
    assert enc.out_shape(32, 32) == (32, 9, 9)
    out = enc.transform(imgs, batch_size=2)
    assert out.shape == (5, 32, 9, 9) and out.dtype == torch.float32
    counts = enc.transform(imgs, dtype=torch.uint8)
    assert counts.dtype == torch.uint8
    # pooled means of the unpooled code maps; counts are window sums
    maps = enc.code_maps(patches.to_tensor(imgs))
    assert maps.shape == (5, 32, 27, 27)
    torch.testing.assert_close(out, F.avg_pool2d(maps, 5, 3, ceil_mode=True))
    torch.testing.assert_close(counts.float(), F.avg_pool2d(maps, 5, 3, ceil_mode=True, divisor_override=1))
    # every position has K ones per half: the 9 x 9 means sum to K per half
    k = enc.k_
    torch.testing.assert_close(out[:, :16].sum(1), torch.full((5, 9, 9), float(k)))
    enc.set_params(out_size=6)
    assert enc.transform(imgs[:1]).shape == (1, 32, 6, 6) == (1, *enc.out_shape())
    with pytest.raises(ValueError):
        enc.transform(imgs[:1], dtype=torch.uint8)


def test_pooled_codes_of_several_chunks():
    """|D| = 2048 at 32 px: encode_batch pools a couple of images at a time
    (the mask of one chunk stays in cache); the result must not depend on it."""
    imgs = np.random.default_rng(3).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    enc = PatchEncoder(n_atoms=2048, patch=6, k=0.4, pool=7, pool_stride=4, ceil_mode=False).fit(imgs)
    x = patches.to_tensor(imgs)
    counts = enc.encode_batch(x, counts=True)
    maps = torch.cat([enc.code_maps(x[i:i + 1]) for i in range(5)])   # one image at a time
    assert counts.shape == (5, 4096, 6, 6) and counts.dtype == torch.uint8
    torch.testing.assert_close(counts.float(), F.avg_pool2d(maps, 7, 4, divisor_override=1))
    assert (counts[:, :2048].sum(1) == 49 * enc.k_).all()


def test_fit_is_seeded_and_init_does_no_work(images):
    enc = PatchEncoder(n_atoms=10, patch=3, seed=5)
    assert not hasattr(enc, "atoms_")
    with pytest.raises(RuntimeError):
        enc.transform(images[:1])
    a = enc.fit(images).atoms_
    assert torch.equal(a, PatchEncoder(n_atoms=10, patch=3, seed=5).fit(images).atoms_)
    assert not torch.equal(a, PatchEncoder(n_atoms=10, patch=3, seed=6).fit(images).atoms_)
    # state round trip
    enc2 = PatchEncoder(n_atoms=10, patch=3, seed=5).load_state(enc.state())
    x = patches.to_tensor(images[:2])
    assert all(torch.equal(u, v) for u, v in zip(enc.codes(x), enc2.codes(x)))


def test_mirror_dictionary_makes_flips_a_channel_permutation():
    imgs = np.random.default_rng(3).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    enc = PatchEncoder(n_atoms=24, patch=4, k=0.4, pool=5, pool_stride=4, ceil_mode=False, mirror=True).fit(imgs)
    Q = 4
    a = enc.atoms_.reshape(24, 3, Q, Q)
    assert torch.equal(a[12:], a[:12].flip(-1))
    # symmetrised moments: the whitening commutes with the mirror
    from patchbook.patchknn.encoding import mirror_index
    f = mirror_index(3, Q)
    W = enc.whitener_.W_
    torch.testing.assert_close(W[f][:, f], W)
    perm = enc.flip_permutation(16, 16)
    codes = enc.transform(imgs, dtype=torch.uint8)
    flipped = enc.transform(np.ascontiguousarray(imgs[:, :, ::-1]), dtype=torch.uint8)
    agree = (flipped == codes.flip(-1)[:, perm]).float().mean()
    assert agree > 0.999  # float rounding may swap a near-tie
    with pytest.raises(ValueError):  # 13 positions, windows of 5 at stride 3 in ceil mode are not symmetric
        enc.set_params(pool_stride=3, ceil_mode=True).flip_permutation(16, 16)


def test_flip_augmentation_of_cached_codes():
    from patchbook.patchknn.classifier import ArrayBatches

    X = torch.arange(4 * 4 * 1 * 3, dtype=torch.float32).reshape(4, 4, 1, 3)
    perm = torch.tensor([2, 3, 0, 1])
    data = ArrayBatches(X, torch.arange(4), batch_size=4, flip_perm=perm, seed=0)
    n_flipped = 0
    for x, y in data:
        for xi, yi in zip(x, y):
            same, fl = torch.equal(xi, X[yi]), torch.equal(xi, X[yi].flip(-1)[perm])
            assert same or fl
            n_flipped += fl
    assert 0 < n_flipped < 4


# ------------------------------------------- input at the entry points ----

def _entry_points(enc):
    """Every entry point of a fitted encoder, as functions of a batch."""
    return {"transform": enc.transform, "codes": enc.codes, "code_maps": enc.code_maps,
            "encode_batch": enc.encode_batch, "scores": enc.scores,
            "fit": lambda x: PatchEncoder(**enc.get_params()).fit(x)}


def test_every_integer_layout_gives_the_codes_of_uint8(images, encoder):
    """uint8 and int64 arrays, uint8 and int64 tensors, and floats in [0, 1]
    are the same images: the same codes (issue 18: int64 arrays and uint8
    tensors were coded without the division by 255)."""
    u8 = images[:3]
    want = encoder.transform(u8)
    t = torch.from_numpy(u8).permute(0, 3, 1, 2)
    for same in (u8.astype(np.int64), t, t.long(), u8.astype(np.float64) / 255, t.float() / 255):
        assert torch.equal(encoder.transform(same), want)
        assert torch.equal(encoder.encode_batch(same), want)
    assert torch.equal(encoder.code_maps(u8.astype(np.int64)), encoder.code_maps(patches.to_tensor(u8)))


@pytest.mark.parametrize("name", ["transform", "codes", "code_maps", "encode_batch", "scores", "fit"])
def test_bad_images_are_refused_at_every_entry_point(images, encoder, name):
    f = _entry_points(encoder)[name]
    u8 = images[:3]
    t = patches.to_tensor(u8)
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\].*divide by 255"):
        f(u8.astype(np.float32))                                 # floats in [0, 255]
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        f(t * 255)
    with pytest.raises(ValueError, match="NaN"):
        f(torch.where(t > 0.5, float("nan"), t))
    with pytest.raises(ValueError, match="NaN"):
        f(np.where(u8 > 128, np.inf, u8 / 255))
    with pytest.raises(ValueError, match="0-255"):
        f(u8.astype(np.int64) * 2)
    with pytest.raises(ValueError, match="boolean"):
        f(u8 > 128)
    with pytest.raises(ValueError, match="4 dimensions"):
        f(u8[..., 0])                                            # greyscale without its channel axis
    if name != "fit":                                            # a fit takes any number of channels
        for grey in (u8[..., :1], t[:, :1]):                      # greyscale into a colour encoder
            with pytest.raises(ValueError, match="1 channel.*fitted on 3-channel"):
                f(grey)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        f(u8.tolist())


def test_channels_are_known_after_load_state(images, encoder):
    enc = PatchEncoder(**encoder.get_params()).load_state(encoder.state())
    assert enc.n_channels_ == 3
    with pytest.raises(ValueError, match="fitted on 3-channel"):
        enc.codes(patches.to_tensor(images[:1, :, :, :1]))
