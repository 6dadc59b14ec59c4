"""The authors' formulation of the encoder against a transcription of their script.

The functions prefixed ``their_`` transcribe louity/patches at the head of
the repository (``kneighbors.py``, ``utils.py``; file:line in each
docstring), as close to the letter as a test allows; they live here only,
as the reference the library's ``PatchEncoder(formulation="authors")`` must
reproduce: the same codes away from exact ties, on random inputs.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from patchbook.patchknn import pipeline
from patchbook.patchknn.encoding import (
    AUTHORS_CIFAR_MEAN,
    AUTHORS_CIFAR_STD,
    PatchEncoder,
    resolve_k,
)
from patchbook.patchknn.patches import PatchMoments, patch_moments, to_tensor

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


# ------------------------------------------------ the transcription ----

def their_to_tensor_normalize(images: np.ndarray) -> torch.Tensor:
    """``transforms.ToTensor()`` then ``transforms.Normalize((0.4914, 0.4822,
    0.4465), (0.2023, 0.1994, 0.2010))`` (kneighbors.py:138-141), batched."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor((0.4914, 0.4822, 0.4465))[None, :, None, None]
    std = torch.tensor((0.2023, 0.1994, 0.2010))[None, :, None, None]
    return (x - mean) / std


def their_compute_whitening_from_loader(batches, patch_size, stride=1):
    """utils.py:90-132 (``func=None``), on ``ToTensor()`` batches: the mean and
    the biased covariance of every patch, and ``eigh`` of the covariance."""
    mean, covariance, N = None, None, 0
    for inputs in batches:
        patches = F.unfold(inputs, patch_size, stride=stride).transpose(0, 1).contiguous()
        patches = patches.view(patches.size(0), -1)
        n = inputs.size(0)
        batch_mean = patches.mean(dim=1, keepdims=True).double()
        mean = batch_mean if mean is None else N / (N + n) * mean + n / (N + n) * batch_mean
        N += n
    mean = mean.float()
    N = 0
    for inputs in batches:
        patches = F.unfold(inputs, patch_size, stride=stride).transpose(0, 1).contiguous()
        patches = patches.view(patches.size(0), -1) - mean
        n = inputs.size(0)
        batch_covariance = patches @ patches.t() / patches.size(1)
        covariance = (batch_covariance.double() if covariance is None
                      else N / (N + n) * covariance + n / (N + n) * batch_covariance.double())
        N += n
    eigvals, eigvecs = np.linalg.eigh(covariance.cpu().numpy())   # scipy.linalg.eigh in theirs
    return mean.view(-1).cpu().numpy().astype("float32"), eigvecs, eigvals, covariance


def their_kernel_and_bias(patches: np.ndarray, eigvecs, eigvals, whitening_reg):
    """kneighbors.py:391-396 and 442-450: ``patches`` the raw atoms
    (``n x 3 x Q x Q``, float64 in [0, 1])."""
    if whitening_reg >= 0:
        inv_sqrt_eigvals = np.diag(1. / np.sqrt(eigvals + whitening_reg))
        whitening_op = eigvecs.dot(inv_sqrt_eigvals).astype('float32')
    else:
        whitening_op = np.eye(eigvals.size, dtype='float32')
    orig_shape = patches.shape
    patches = patches.reshape(patches.shape[0], -1)
    WTW_patches = (patches).dot(whitening_op).dot(whitening_op.T)
    kernel_convolution = torch.from_numpy(WTW_patches.astype('float32')).view(orig_shape)
    W_patches_norm_square = np.linalg.norm((patches).dot(whitening_op), axis=1)**2
    bias_convolution = torch.from_numpy(0.5 * W_patches_norm_square.astype('float32')).view(1, -1, 1, 1)
    return kernel_convolution, bias_convolution


def lowestk_heaviside(x, k):
    """kneighbors.py:231-234."""
    return (x < x.kthvalue(dim=1, k=k + 1, keepdim=True).values).float()


def lowestk_sigmoid(x, k, sigmoid):
    """kneighbors.py:236-239."""
    return torch.sigmoid((x.kthvalue(dim=1, k=k + 1, keepdim=True).values - x) / sigmoid).float()


def their_forward(x, kernel_convolution, bias_convolution, pool_size, pool_stride, k_neighbors, sigmoid=0.,
                  pool=True):
    """``Net.forward`` (kneighbors.py:317-334, ``finalsize_avg_pooling=0``);
    ``pool=False`` returns the maps before ``avg_pool2d``."""
    out = F.conv2d(x, kernel_convolution)
    if sigmoid > 0:
        out1 = lowestk_sigmoid(-out + bias_convolution, k_neighbors, sigmoid)
        out2 = lowestk_sigmoid(out + bias_convolution, k_neighbors, sigmoid)
    else:
        out1 = lowestk_heaviside(-out + bias_convolution, k_neighbors)
        out2 = lowestk_heaviside(out + bias_convolution, k_neighbors)
    if pool:
        out1 = F.avg_pool2d(out1, pool_size, stride=pool_stride, ceil_mode=True)
        out2 = F.avg_pool2d(out2, pool_size, stride=pool_stride, ceil_mode=True)
    return out1, out2


# --------------------------------------------------------- fixtures ----

def smooth_images(n=10, size=16, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, size, size, 3)).cumsum(1).cumsum(2)
    x = (x - x.min()) / (x.max() - x.min()) * 255
    return x.astype(np.uint8)


@pytest.fixture(scope="module")
def images():
    return smooth_images()


@pytest.fixture(scope="module")
def theirs(images):
    """Their whitening of ``images`` (batches of 4, as a loader would give them)."""
    batches = [torch.from_numpy(images[i:i + 4]).permute(0, 3, 1, 2).float().div(255) for i in range(0, 10, 4)]
    return their_compute_whitening_from_loader(batches, 4)


def near_tie_rows(kernel, bias, x, k, rel=1e-5):
    """Positions (``B x h x w`` bool) where, in float64, the K-th and (K+1)-th
    smallest of their scores of x or of -x are within ``rel`` of the scores'
    spread: there float32 rounding may decide the code."""
    out = F.conv2d(x.double(), kernel.double())
    near = torch.zeros(out.shape[0], *out.shape[2:], dtype=torch.bool)
    for t in (-out + bias.double(), out + bias.double()):
        v = t.sort(dim=1).values
        gap = v[:, k] - v[:, k - 1]
        near |= gap < rel * (v[:, -1] - v[:, 0])
    return near


# ------------------------------------------------------------ tests ----

def test_k_is_truncated_in_theirs_and_rounded_in_ours():
    # kneighbors.py:488: int(n_channel_convolution * kneighbors_fraction)
    assert resolve_k(0.4, 512, "authors") == int(512 * 0.4) == 204 and resolve_k(0.4, 512) == 205
    assert resolve_k(0.4, 16384, "authors") == 6553 and resolve_k(0.4, 16384) == 6554
    assert resolve_k(0.4, 2048, "authors") == resolve_k(0.4, 2048) == 819
    assert resolve_k(100, 512, "authors") == 100                      # a count is a count
    with pytest.raises(ValueError, match="formulation"):
        resolve_k(0.4, 512, "theirs")


def test_our_moments_are_their_whitening_statistics(images, theirs):
    mean, _, _, cov = theirs
    m = patch_moments(images, 4, batch_size=4)
    torch.testing.assert_close(m.mean, torch.from_numpy(mean).double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(m.cov, cov, rtol=0, atol=1e-6)


@pytest.mark.parametrize("whitening,lam,reg", [("zca", 1e-3, 1e-3), ("pca", 1e-2, 1e-2), ("none", 1e-3, -1.0)])
@pytest.mark.parametrize("inputs", ["smooth", "uniform"])
def test_binary_codes_are_their_net_forward(images, theirs, whitening, lam, reg, inputs):
    mean, eigvecs, eigvals, cov = theirs
    enc = PatchEncoder(n_atoms=37, patch=4, k=0.4, lam=lam, whitening=whitening, pool=5, pool_stride=3,
                       ceil_mode=True, formulation="authors", seed=1)
    enc.fit(images, moments=PatchMoments(torch.from_numpy(mean).double(), cov, 1))
    assert enc.k_ == int(37 * 0.4) == 14 != resolve_k(0.4, 37)
    atoms = enc.atoms_.double().numpy().reshape(37, 3, 4, 4)
    kernel, bias = their_kernel_and_bias(atoms, eigvecs, eigvals, reg)
    test = (smooth_images(n=6, seed=5) if inputs == "smooth"
            else np.random.default_rng(7).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    x = their_to_tensor_normalize(test)
    maps1, maps2 = their_forward(x, kernel, bias, 5, 3, enc.k_, pool=False)
    near = near_tie_rows(kernel, bias, x, enc.k_)
    assert near.float().mean() < 0.01                                    # the comparison covers the codes
    ours = enc.code_maps(to_tensor(test))                                # 6 x 74 x 13 x 13
    far = ~near[:, None].expand_as(maps1)
    assert torch.equal(ours[:, :37][far], maps1[far]) and torch.equal(ours[:, 37:][far], maps2[far])
    # pooled: avg_pool2d(ceil_mode=True), 13 x 13 maps to 4 x 4 with clipped border windows
    out1, out2 = their_forward(x, kernel, bias, 5, 3, enc.k_)
    pooled = enc.encode_batch(to_tensor(test))
    assert pooled.shape == (6, 74, 4, 4) == (6, 2 * out1.shape[1], *out1.shape[2:])
    clean = F.avg_pool2d(near[:, None].float(), 5, 3, ceil_mode=True) == 0     # windows without a near tie
    assert clean.float().mean() > 0.5
    clean = clean.expand_as(pooled)
    torch.testing.assert_close(pooled[clean], torch.cat([out1, out2], 1)[clean], rtol=0, atol=1e-6)
    counts = enc.transform(test, dtype=torch.uint8)
    ref = F.avg_pool2d(torch.cat([maps1, maps2], 1), 5, 3, ceil_mode=True, divisor_override=1)
    assert torch.equal(counts.float()[clean], ref[clean])


@pytest.mark.parametrize("s", [0.5, 2.0, 20.0])
def test_soft_codes_are_their_lowestk_sigmoid_in_their_unit(images, theirs, s):
    mean, eigvecs, eigvals, cov = theirs
    enc = PatchEncoder(n_atoms=37, patch=4, k=0.4, lam=1e-3, pool=5, pool_stride=3, ceil_mode=True,
                       formulation="authors", soft=s, seed=1)
    enc.fit(images, moments=PatchMoments(torch.from_numpy(mean).double(), cov, 1))
    kernel, bias = their_kernel_and_bias(enc.atoms_.double().numpy().reshape(37, 3, 4, 4), eigvecs, eigvals, 1e-3)
    test = smooth_images(n=4, seed=9)
    x = their_to_tensor_normalize(test)
    # their float32 forward, and the same in float64 (the exact soft code): ours is as close to the
    # exact one as theirs (scores of ~1e3 in float32 round to ~1e-4, which a small s magnifies)
    for pool in (False, True):
        exact = torch.cat(their_forward(x.double(), kernel.double(), bias.double(), 5, 3, enc.k_, s, pool), 1)
        them = torch.cat(their_forward(x, kernel, bias, 5, 3, enc.k_, s, pool), 1)
        us = enc.encode_batch(to_tensor(test)) if pool else enc.code_maps(to_tensor(test))
        err_us, err_them = float((us - exact).abs().max()), float((them - exact).abs().max())
        assert us.shape == exact.shape and err_us <= max(2 * err_them, 1e-6), (err_us, err_them)
    # variants sharing one score computation give the same soft codes
    many = pipeline.encode_variants(enc, test, [{}, {"soft": 2 * s}, {"soft": None}])
    torch.testing.assert_close(torch.from_numpy(many[0]), enc.encode_batch(to_tensor(test)), rtol=0, atol=1e-6)


def test_same_dictionary_and_whitening_in_both_formulations(images):
    ours = PatchEncoder(n_atoms=20, patch=4, seed=3).fit(images)
    theirs = PatchEncoder(n_atoms=20, patch=4, seed=3, formulation="authors").fit(images)
    assert torch.equal(ours.atoms_, theirs.atoms_) and torch.equal(ours.whitener_.W_, theirs.whitener_.W_)
    # ... and different codes: the normalised patch is not the patch
    x = to_tensor(images[:3])
    assert not torch.equal(ours.code_maps(x), theirs.code_maps(x))
    with pytest.raises(ValueError, match="refit"):
        ours.set_params(formulation="authors").code_maps(x)
    with pytest.raises(ValueError, match="3-channel"):
        PatchEncoder(n_atoms=8, patch=3, formulation="authors").fit(images[..., :1])
    with pytest.raises(ValueError, match=r"\(K\+1\)-th"):
        PatchEncoder(n_atoms=8, patch=3, k=8, soft=1.0, formulation="authors").fit(images)


def test_normalisation_constants_are_theirs():
    assert AUTHORS_CIFAR_MEAN == (0.4914, 0.4822, 0.4465) and AUTHORS_CIFAR_STD == (0.2023, 0.1994, 0.2010)


def test_point_config_carries_the_formulation():
    base = pipeline.PointConfig(n_atoms=512)
    authors = base.replace(formulation="authors")
    assert base.padding_mode == "reflect" and authors.padding_mode == "zeros"   # RandomCrop(32, padding=4)
    assert authors.key() != base.key()
    assert authors.encoder_params()["formulation"] == "authors"
    assert "formulation" in pipeline.FIT_PARAMS
    # the default is left out of the key: points measured before the option keep their keys
    assert "formulation" not in PatchEncoder().code_params()
    assert PatchEncoder(formulation="authors").code_params()["formulation"] == "authors"
    with pytest.raises(ValueError, match="formulation"):
        base.replace(formulation="paper")


def test_augmented_authors_points_crop_with_zero_padding(monkeypatch, tmp_path, tmp_cache):
    """``measure`` hands the point's padding mode to the crops of every epoch."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for c in range(2):
            d = tmp_path / "folder" / split / f"class{c}"
            d.mkdir(parents=True)
            for j in range(n):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(d / f"{j}.png")
    seen = {}

    class Stop(Exception):
        pass

    def fit(model, source, *a, **kw):
        seen["padding_mode"] = source.padding_mode
        raise Stop

    monkeypatch.setattr(pipeline.resumable, "fit", fit)
    config = pipeline.PointConfig(dataset=f"imagefolder:{tmp_path / 'folder'}", n_atoms=8, patch=3, pool=4,
                                  pool_stride=3, ceil_mode=False, bottleneck=4, head_kernel=2, epochs=1,
                                  batch_size=4, augment=True)
    for formulation, mode in (("authors", "zeros"), ("ours", "reflect")):
        with pytest.raises(Stop):
            pipeline.measure(config.replace(formulation=formulation), device="cpu", output=tmp_path / formulation)
        assert seen.pop("padding_mode") == mode
