"""Stability and derivative of the patch code (patchbook.patchknn.sensitivity),
each on a small case whose answer is known."""

import itertools

import numpy as np
import pytest
import torch

from patchbook.patchknn import knn, patches
from patchbook.patchknn import sensitivity as sv
from patchbook.patchknn.encoding import PatchEncoder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def smooth_images(n=12, size=12, channels=3, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, size, size, channels)).cumsum(1).cumsum(2)
    x = (x - x.min()) / (x.max() - x.min()) * 255
    return x.astype(np.uint8)


@pytest.fixture(scope="module")
def images():
    return smooth_images()


@pytest.fixture(scope="module")
def encoder(images):
    return PatchEncoder(n_atoms=20, patch=3, k=0.4, lam=1e-3, pool=3, pool_stride=2).fit(images)


def test_scores_are_the_encoders_and_whitened_distances(images, encoder):
    x = patches.to_tensor(images[:2])
    s = sv.scores(encoder, x.double(), torch.float64)
    assert s.shape == (2, 2 * 10 * 10, 20)
    assert torch.allclose(s[0].float(), encoder.scores(x), atol=1e-3, rtol=1e-4)
    P = patches.extract_patches(x, 3).reshape(-1, 27).double()
    wh = encoder.whitener_
    w, a = wh.transform(P), wh.transform(encoder.atoms_.double())
    d2_plus = torch.cdist(w, a) ** 2
    d2_minus = torch.cdist(-w, a) ** 2
    norm = (w * w).sum(1, keepdim=True)
    assert torch.allclose(s[0] + norm, d2_plus, atol=1e-9) and torch.allclose(s[1] + norm, d2_minus, atol=1e-9)


def test_ranks_give_the_knn_mask_at_every_k():
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 6, (50, 9), generator=g).float()   # many ties: the lower index first
    r = sv.ranks(s)
    assert r.dtype == torch.int16 and torch.equal(r.sort(1).values, torch.arange(9).expand(50, 9).to(torch.int16))
    for k in range(10):
        assert torch.equal(r < k, knn.knn_mask_reference(s, k))


def brute_flips(sa, sb):
    return np.array([int((knn.knn_mask_reference(sa, k) ^ knn.knn_mask_reference(sb, k)).sum())
                     for k in range(sa.shape[1] + 1)])


def test_flip_curve_counts_the_differing_entries_at_every_k():
    g = torch.Generator().manual_seed(1)
    sa = torch.randn(40, 11, generator=g)
    sb = sa + 0.3 * torch.randn(40, 11, generator=g)
    c = sv.flip_curve(sv.ranks(sa), sv.ranks(sb))
    assert c.rows == 40 and c.n_atoms == 11
    assert np.array_equal(c.flips, brute_flips(sa, sb))
    assert c.flips[0] == 0 and c.flips[-1] == 0               # K = 0 and K = |D|: nothing can flip
    assert np.allclose(c.entry_fraction(), c.flips / (40 * 11))
    assert np.isnan(c.replaced()[0]) and np.allclose(c.replaced()[1:], c.flips[1:] / (2 * np.arange(1, 12) * 40))
    # the same input flips nothing; one swap of adjacent ranks flips two entries, at that K only
    assert not sv.flip_curve(sv.ranks(sa), sv.ranks(sa)).flips.any()
    row = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    swapped = torch.tensor([[0.0, 2.0, 1.0, 3.0]])
    assert sv.flip_curve(sv.ranks(row), sv.ranks(swapped)).flips.tolist() == [0, 0, 2, 0, 0]
    assert np.array_equal((c + c).flips, 2 * c.flips) and (c + c).rows == 80


def test_pooled_code_from_ranks_is_the_encoders(images, encoder):
    x = patches.to_tensor(images[:3])
    r = sv.ranks(sv.scores(encoder, x))
    for k in (1, 8, 19):
        other = PatchEncoder(**{**encoder.get_params(), "k": k}).load_state(encoder.state())
        got = sv.pooled_at(encoder, r, k, 3, 10, 10)
        assert torch.allclose(got, other.encode_batch(x), atol=1e-6)


def brute_margin(encoder, p, k):
    """Distance to the nearest boundary hyperplane, pair by pair (float64)."""
    kernels, _, _ = sv.folded(encoder, torch.float64)
    best = float("inf")
    for s in sv.patch_scores(encoder, p[None].double(), torch.float64)[:, 0]:
        order = torch.sort(s, stable=True).indices.tolist()
        for j, l in itertools.product(order[:k], order[k:]):
            best = min(best, float((s[l] - s[j]) / (2 * (kernels[l] - kernels[j]).norm())))
    return best


def code_at(encoder, p, k):
    return sv.ranks(sv.patch_scores(encoder, p[None].double(), torch.float64)) < k


def test_margin_is_the_distance_to_the_nearest_code_change(images, encoder):
    g = torch.Generator().manual_seed(2)
    P = patches.sample_patches(images, 3, 12, seed=3).double()
    k = encoder.k_
    margin = sv.code_margin(encoder, P, chunk_entries=100)       # several chunks
    assert torch.allclose(margin, torch.tensor([brute_margin(encoder, p, k) for p in P], dtype=torch.float64))
    kernels, _, _ = sv.folded(encoder, torch.float64)
    for p, m in zip(P, margin):
        assert m > 0
        # no perturbation shorter than the margin changes the code (random directions) ...
        for _ in range(50):
            v = torch.randn(27, generator=g, dtype=torch.float64)
            assert torch.equal(code_at(encoder, p + 0.999 * m * v / v.norm(), k), code_at(encoder, p, k))
        # ... and one just longer, towards the nearest boundary, does
        worst = min(((j, l) for j, l in itertools.product(range(20), range(20)) if j != l),
                    key=lambda jl: abs(_pair_distance(encoder, p, *jl, kernels)))
        n = _boundary_normal(encoder, p, *worst, kernels)
        assert torch.equal(code_at(encoder, p + 0.999 * m * n, k), code_at(encoder, p, k))
        assert not torch.equal(code_at(encoder, p + 1.001 * m * n, k), code_at(encoder, p, k))


def _sign_scores(encoder, p):
    return sv.patch_scores(encoder, p[None], torch.float64)[:, 0]


def _pair_distance(encoder, p, j, l, kernels):
    """Signed distance to the hyperplane s_j = s_l, where that pair straddles the
    threshold for one of the signs (inf otherwise)."""
    best = float("inf")
    for s in _sign_scores(encoder, p):
        inside = set(torch.sort(s, stable=True).indices[: encoder.k_].tolist())
        if j in inside and l not in inside:
            best = min(best, float((s[l] - s[j]) / (2 * (kernels[l] - kernels[j]).norm())))
    return best


def _boundary_normal(encoder, p, j, l, kernels):
    """Unit direction that closes the gap s_l - s_j fastest for the sign where
    the pair straddles the threshold."""
    for sign, s in zip((1, -1), _sign_scores(encoder, p)):
        inside = set(torch.sort(s, stable=True).indices[: encoder.k_].tolist())
        if j in inside and l not in inside:
            n = sign * (kernels[l] - kernels[j])        # d(s_l - s_j)/dx = -2 sign (k_l - k_j)
            return n / n.norm()
    raise AssertionError("the pair straddles no threshold")


def test_margin_is_zero_on_a_tie_and_infinite_when_nothing_can_flip(images):
    enc = PatchEncoder(n_atoms=4, patch=2, k=1, whitening="none", both_signs=False, pool=2, pool_stride=1)
    enc.fit(images[..., :1])
    atoms = torch.tensor([[0.2, 0.2, 0.2, 0.2], [0.3, 0.3, 0.3, 0.3], [0.9, 0.1, 0.9, 0.1], [0.1, 0.9, 0.1, 0.9]])
    enc.set_atoms(atoms)
    a = enc.atoms_.double()
    mid = (a[0] + a[1]) / 2
    assert float(sv.code_margin(enc, mid[None])) == pytest.approx(0, abs=1e-12)
    for k in (0, 4):                                          # K = 0 or |D|: nothing can flip
        assert torch.isinf(sv.code_margin(enc, mid[None], k=k)).all()
    # at an atom, the margin is half the distance to the next atom along their line (k = 1, no whitening)
    assert float(sv.code_margin(enc, a[:1])) == pytest.approx(float((a[1] - a[0]).norm() / 2))


def test_pooled_binary_code_is_constant_below_the_image_margin(images, encoder):
    x = patches.to_tensor(images[:4]).double()
    m = sv.image_margins(encoder, x)
    assert (m > 0).all()
    small = sv.pooled_changes(encoder, x.float(), [float(m.min()) * 0.5, float(m.min()) * 0.1], seed=0)
    assert not small.any()                                # the derivative is zero: nothing moves
    assert sv.pooled_changes(encoder, x.float(), [1.0], seed=0).all()   # a long step does change it


def test_stability_of_a_horizontally_constant_image():
    g = np.random.default_rng(4)
    col = g.integers(0, 256, size=(6, 12, 1, 3))
    flat = np.repeat(col, 12, axis=2).astype(np.uint8)      # constant along each row
    enc = PatchEncoder(n_atoms=16, patch=3, k=6, pool=3, pool_stride=2).fit(smooth_images(seed=5))
    st = sv.stability(enc, flat, noise=[0.0, 8 / 255], ks=[1, 6, 12], batch_size=3)
    h = st.curves["shift 1 px (horizontal)"]
    assert not h.flips.any() and np.all(st.pooled["shift 1 px (horizontal)"] == 0)
    assert st.pixels["shift 1 px (horizontal)"] == 0
    assert not st.curves["noise 0/255"].flips.any() and np.all(st.pooled["noise 0/255"] == 0)
    assert st.curves["shift 1 px (vertical)"].flips.any() and st.curves["noise 8/255"].flips.any()
    assert h.rows == 6 * 10 * 9 * 2                          # images x positions x signs
    assert np.all(st.pooled["noise 8/255"] > 0) and st.pixels["noise 8/255"] > 0


def test_soft_code_is_the_encoders_and_differentiable(images, encoder):
    x = patches.to_tensor(images[:2])
    for s in (0.5, 5.0):
        soft = PatchEncoder(**{**encoder.get_params(), "soft": s}).load_state(encoder.state())
        assert torch.allclose(sv.pooled_soft_code(encoder, x, s), soft.encode_batch(x), atol=1e-5)
    xd = patches.to_tensor(images[:1]).double()[..., :7, :7]
    J = torch.autograd.functional.jacobian(lambda z: sv.pooled_soft_code(encoder, z, 2.0), xd)
    v = torch.randn(xd.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    h = 1e-6
    fd = (sv.pooled_soft_code(encoder, xd + h * v, 2.0) - sv.pooled_soft_code(encoder, xd - h * v, 2.0)) / (2 * h)
    jv = (J.reshape(fd.numel(), -1) @ v.reshape(-1)).reshape(fd.shape)
    assert torch.allclose(jv, fd, rtol=1e-5, atol=1e-8) and jv.abs().max() > 1e-3


def test_jacobian_norm_estimates_the_frobenius_norm(images, encoder):
    xd = patches.to_tensor(images[:2]).double()[..., :7, :7]
    J = torch.autograd.functional.jacobian(lambda z: sv.pooled_soft_code(encoder, z, 2.0), xd)
    J = J.reshape(2, -1, 2, xd[0].numel())
    exact = torch.stack([J[i, :, i].norm() for i in range(2)])   # an image's code depends on it only
    assert not J[0, :, 1].any() and not J[1, :, 0].any()
    est = sv.jacobian_norm(encoder, xd, 2.0, n_probes=400, seed=1)
    assert torch.allclose(est, exact, rtol=0.08)


@pytest.fixture(scope="module")
def pair_encoder(images):
    """Four atoms, no whitening, K = 1: atoms 0 and 1 close, 2 and 3 far."""
    enc = PatchEncoder(n_atoms=4, patch=2, k=1, whitening="none", both_signs=False, pool=2, pool_stride=1)
    enc.fit(images[..., :1])
    atoms = torch.tensor([[0.2, 0.25, 0.2, 0.2], [0.3, 0.3, 0.35, 0.3],
                          [0.9, 0.1, 0.9, 0.1], [0.1, 0.9, 0.1, 0.9]])
    return enc.set_atoms(atoms)


def patch_gradient_norm(enc, p, s):
    J = torch.autograd.functional.jacobian(lambda z: sv.soft_code(enc, z[None], s)[0], p)
    return float(J.norm())


def test_soft_gradient_grows_as_one_over_s_at_a_tie(pair_encoder):
    enc = pair_encoder
    k0, k1 = sv.folded(enc, torch.float64)[0][:2]
    tie = (enc.atoms_[0].double() + enc.atoms_[1].double()) / 2        # equidistant from atoms 0 and 1
    assert abs(float(sv.score_gaps(enc, tie[None]))) < 1e-12
    for s in (1e-1, 1e-2, 1e-3, 1e-4):
        # d sigmoid((tau - s_j)/s)/dx = (k_j - k_other) / (4 s) for the two tied atoms, ~0 for the others
        expected = float(np.sqrt(2) * (k0 - k1).norm() / (4 * s))
        assert patch_gradient_norm(enc, tie, s) == pytest.approx(expected, rel=1e-3)


def test_soft_gradient_vanishes_away_from_the_threshold(pair_encoder):
    enc = pair_encoder
    p = enc.atoms_[0].double()                                # at an atom: a gap to the second nearest
    gap = float(sv.score_gaps(enc, p[None]))
    assert gap > 0
    norms = [patch_gradient_norm(enc, p, gap * f) for f in (1.0, 0.1, 0.03, 0.01)]
    assert all(b < a for a, b in zip(norms, norms[1:])) and norms[-1] < 1e-15
