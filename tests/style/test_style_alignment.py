"""Photo-painting alignment (patchbook.style.alignment) and the pairs kept as data
(patchbook.style.pairs): homographies recovered from their own points, warps that
move a dot where the homography says, the largest rectangle against brute force."""

import itertools

import numpy as np
import pytest
import torch

from patchbook.style import alignment, pairs

#: A homography with rotation, shear, scale, translation and perspective.
H_TRUE = np.array([[1.1, 0.2, 5.0], [-0.15, 0.9, 12.0], [4e-4, -3e-4, 1.0]])


def _points(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 200, size=(n, 2))


@pytest.mark.parametrize("n", [4, 5, 12])
def test_fit_recovers_a_known_homography(n):
    src = _points(n)
    dst = alignment.project(H_TRUE, src)
    H = alignment.fit_homography(src, dst)
    np.testing.assert_allclose(H, H_TRUE, rtol=1e-6, atol=1e-9)
    assert alignment.residuals(H, src, dst).max() < 1e-6
    # a point that took no part in the fit lands where the true homography sends it
    other = np.array([[37.0, 151.0]])
    np.testing.assert_allclose(alignment.project(H, other), alignment.project(H_TRUE, other), atol=1e-6)


def test_projection_is_the_homogeneous_division():
    p = np.array([[10.0, 20.0]])
    x, y, w = H_TRUE @ np.array([10.0, 20.0, 1.0])
    np.testing.assert_allclose(alignment.project(H_TRUE, p), [[x / w, y / w]])
    np.testing.assert_allclose(alignment.project(np.eye(3) * 3, p), p)


def test_refinement_lowers_the_reprojection_error_with_noise():
    src = _points(30, seed=1)
    noise = np.random.default_rng(2).normal(0, 1.0, size=src.shape)
    dst = alignment.project(H_TRUE, src) + noise
    dlt = alignment.fit_homography(src, dst, refine=False)
    fit = alignment.fit_homography(src, dst)
    assert alignment.rms(alignment.residuals(fit, src, dst)) <= alignment.rms(alignment.residuals(dlt, src, dst)) + 1e-9
    # with pixel noise of one the fit is about as good as the truth, no better than the noise allows
    truth = alignment.rms(alignment.residuals(H_TRUE, src, dst))
    assert 0.7 * truth < alignment.rms(alignment.residuals(fit, src, dst)) <= truth
    np.testing.assert_allclose(alignment.project(fit, [[100, 100]]), alignment.project(H_TRUE, [[100, 100]]), atol=1.5)


def test_leave_one_out_finds_the_misplaced_point():
    src = _points(8, seed=3)
    dst = alignment.project(H_TRUE, src)
    assert alignment.leave_one_out(src, dst).max() < 1e-5
    dst[5] += [25.0, -10.0]
    loo = alignment.leave_one_out(src, dst)
    assert int(np.argmax(loo)) == 5 and loo[5] == pytest.approx(np.hypot(25, 10), rel=1e-6)
    with pytest.raises(ValueError, match="at least 5"):
        alignment.leave_one_out(src[:4], dst[:4])


def test_bad_input_is_refused():
    src = _points(6)
    with pytest.raises(ValueError, match="at least 4"):
        alignment.fit_homography(src[:3], src[:3])
    with pytest.raises(ValueError, match="6 source points for 5"):
        alignment.fit_homography(src, src[:5])
    with pytest.raises(ValueError, match="N x 2"):
        alignment.fit_homography(src.ravel(), src.ravel())
    line = np.c_[np.arange(6.0), 2 * np.arange(6.0)]
    with pytest.raises(ValueError, match="degenerate"):
        alignment.fit_homography(line, line + 1)


def test_to_pixels():
    np.testing.assert_allclose(alignment.to_pixels([[0.5, 0.25], [1, 1]], 200, 100), [[100, 25], [200, 100]])


def test_warp_moves_a_dot_where_the_homography_sends_it():
    img = torch.zeros(3, 60, 80)
    img[:, 20:22, 30:32] = 1.0  # a 2x2 dot centred on (31, 21) in pixel coordinates
    H = np.array([[1.2, 0.1, 7.0], [-0.05, 1.1, 4.0], [0.0, 0.0, 1.0]])
    out, mask = alignment.warp(img, H, (90, 110))
    ys, xs = np.nonzero(out[0].numpy() > 0.3)
    centre = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
    np.testing.assert_allclose(centre, alignment.project(H, [[31.0, 21.0]])[0], atol=0.6)
    # the mask is the image's footprint: its corners map to the corners of the covered region
    assert mask.dtype == torch.bool and not mask[0, 0] and mask[10, 10] and not mask[-1, -1]
    assert float(out[:, ~mask].abs().max()) == 0.0


def test_identity_warp_returns_the_image():
    img = torch.rand(3, 16, 24, generator=torch.Generator().manual_seed(0))
    out, mask = alignment.warp(img, np.eye(3), (16, 24))
    torch.testing.assert_close(out, img, atol=1e-5, rtol=0)
    assert bool(mask.all())


def _brute_force(m):
    best = 0
    for t, b in itertools.combinations(range(m.shape[0] + 1), 2):
        for l, r in itertools.combinations(range(m.shape[1] + 1), 2):
            if m[t:b, l:r].all():
                best = max(best, (b - t) * (r - l))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_largest_rectangle_against_brute_force(seed):
    m = np.random.default_rng(seed).random((7, 9)) < 0.75
    m[3, 4] = True
    t, l, b, r = alignment.largest_rectangle(m)
    assert m[t:b, l:r].all() and (b - t) * (r - l) == _brute_force(m)


def test_largest_rectangle_of_a_warped_footprint_and_of_nothing():
    m = np.zeros((10, 12), dtype=bool)
    m[2:7, 3:11] = True
    assert alignment.largest_rectangle(m) == (2, 3, 7, 11)
    with pytest.raises(ValueError, match="no true pixel"):
        alignment.largest_rectangle(np.zeros((4, 4), dtype=bool))


# ------------------------------------------------------------------ the pairs ----


def test_the_pairs_file_is_well_formed():
    specs = pairs.load()
    assert len(specs) >= 8
    for spec in specs.values():
        assert spec.held_out != spec.style and spec.photo_points.shape == spec.canvas_points.shape
        assert len(spec.photo_points) >= pairs.MIN_POINTS
        H = alignment.fit_homography(spec.photo_points, spec.canvas_points)  # not degenerate
        assert np.isfinite(H).all()
    assert pairs.get(next(iter(specs))).id == next(iter(specs))
    with pytest.raises(KeyError, match="no pair"):
        pairs.get("nowhere")
    assert all(n.startswith("monet/") for n in pairs.canvases())


def test_the_pairs_name_files_of_the_data_root(data_root):
    for spec in pairs.load().values():
        assert (data_root / "photos" / spec.photo).is_file(), spec.photo
        for name in (spec.held_out, spec.style):
            assert (data_root / "paintings" / name).is_file(), name


def test_malformed_pairs_are_refused(tmp_path):
    good = {"id": "a", "motif": "m", "photo": "p.jpg", "held_out": "h.jpg", "style": "s.jpg",
            "points": [[0.1 * i, 0.2, 0.1 * i, 0.3 + 0.05 * i] for i in range(5)]}

    def write(*entries):
        import yaml

        path = tmp_path / "pairs.yaml"
        path.write_text(yaml.safe_dump({"pairs": list(entries)}))
        return path

    assert list(pairs.read(write(good))) == ["a"]
    with pytest.raises(ValueError, match="appears twice"):
        pairs.read(write(good, good))
    with pytest.raises(ValueError, match="at least 5"):
        pairs.read(write({**good, "points": good["points"][:4]}))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        pairs.read(write({**good, "points": [[1.5, 0, 0, 0]] * 5}))
    with pytest.raises(ValueError, match="must differ"):
        pairs.read(write({**good, "style": "h.jpg"}))
    with pytest.raises(ValueError, match="missing"):
        pairs.read(write({k: v for k, v in good.items() if k != "motif"}))
