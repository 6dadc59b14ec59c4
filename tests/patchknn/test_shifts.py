"""Exact shift augmentation on cached codes: the window of the padded
image's pooled code is the pooled code of the explicitly cropped image."""

import numpy as np
import pytest
import torch

from patchbook.patchknn import shifts
from patchbook.patchknn.encoding import PatchEncoder


def _images(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, size // 4, size // 4, 3)).astype(np.uint8).repeat(4, 1).repeat(4, 2)
    return np.clip(base.astype(int) + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)


def _agree(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a == b).double().mean())


@pytest.mark.parametrize("geometry", [dict(patch=6, pool=7, pool_stride=4, shift=4, size=32),    # the laptop's
                                      dict(patch=4, pool=3, pool_stride=2, shift=2, size=16),
                                      dict(patch=4, pool=5, pool_stride=2, shift=4, size=20)])
@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_windows_of_the_padded_code_are_the_codes_of_the_crops(geometry, mode):
    g = dict(geometry)
    shift, size = g.pop("shift"), g.pop("size")
    imgs = _images(size=size)
    enc = PatchEncoder(n_atoms=32, k=0.25, ceil_mode=False, mirror=True, **g).fit(imgs)
    n_off = shifts.check_shift(enc, shift, size, size)
    assert n_off == 2 * shift // g["pool_stride"] + 1
    padded = shifts.pad_images(imgs, shift, mode)
    assert padded.shape == (3, size + 2 * shift, size + 2 * shift, 3)
    grid = enc.transform(padded, dtype=torch.uint8)
    plain = enc.transform(imgs, dtype=torch.uint8)
    h, w = plain.shape[2:]
    perm = enc.flip_permutation(size, size)
    for oy in range(0, 2 * shift + 1, g["pool_stride"]):
        for ox in range(0, 2 * shift + 1, g["pool_stride"]):
            crops = np.ascontiguousarray(padded[:, oy:oy + size, ox:ox + size])
            explicit = enc.transform(crops, dtype=torch.uint8)
            n = len(imgs)
            dy, dx = torch.full((n,), oy // g["pool_stride"]), torch.full((n,), ox // g["pool_stride"])
            win = shifts.windows(grid, dy, dx, (h, w))
            assert win.shape == explicit.shape
            assert _agree(win, explicit) > 0.999        # float rounding may swap a near-tie of scores
            flipped = enc.transform(np.ascontiguousarray(crops[:, :, ::-1]), dtype=torch.uint8)
            assert _agree(win.flip(-1)[:, perm], flipped) > 0.999
    # the centre crop is the image: the test codes are the unpadded images' codes
    c = torch.full((len(imgs),), shift // g["pool_stride"])
    assert _agree(shifts.windows(grid, c, c, (h, w)), plain) > 0.999


def test_windows_picks_each_samples_offset():
    grid = torch.arange(2 * 1 * 4 * 5).reshape(2, 1, 4, 5)
    w = shifts.windows(grid, torch.tensor([0, 2]), torch.tensor([1, 0]), (2, 3))
    assert torch.equal(w[0, 0], grid[0, 0, 0:2, 1:4]) and torch.equal(w[1, 0], grid[1, 0, 2:4, 0:3])


def test_pad_images_matches_torch_padding():
    imgs = _images(n=2, size=8)
    x = torch.as_tensor(imgs).permute(0, 3, 1, 2).double()
    for mode, torch_mode in (("reflect", "reflect"), ("zeros", "constant")):
        ref = torch.nn.functional.pad(x, (2,) * 4, mode=torch_mode).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(shifts.pad_images(imgs, 2, mode), ref.astype(np.uint8))
    assert shifts.pad_images(imgs, 0) is imgs
    with pytest.raises(ValueError, match="padding mode"):
        shifts.pad_images(imgs, 2, "wrap")


def test_shifts_that_are_not_windows_are_refused():
    imgs = _images()
    enc = PatchEncoder(n_atoms=16, patch=6, k=0.25, pool=7, pool_stride=4, ceil_mode=False).fit(imgs)
    with pytest.raises(ValueError, match="multiple of the pooling stride"):
        shifts.check_shift(enc, 2)
    with pytest.raises(ValueError, match="shift must be an int"):
        shifts.check_shift(enc, -4)
    # 5 / 3 in ceil mode: the last window of 27 is clipped, that of the padded 35 is not
    enc.set_params(pool=5, pool_stride=3, ceil_mode=True)
    with pytest.raises(ValueError, match="not a window"):
        shifts.check_shift(enc, 3)


def test_shifted_batches_draw_every_offset_and_replay_an_epoch():
    N, G = 40, 4
    grids = torch.arange(N * 2 * G * G, dtype=torch.float32).reshape(N, 2, G, G)
    perm = torch.tensor([1, 0])
    data = shifts.ShiftedBatches(grids, torch.arange(N), (2, 2), batch_size=16, seed=3, flip_perm=perm)
    assert data.n_offsets == (3, 3) and len(data) == 3
    seen, flips = set(), 0
    for x, y in data:
        for xi, yi in zip(x, y.tolist()):
            hits = [(dy, dx, f) for dy in range(3) for dx in range(3) for f in (0, 1)
                    if torch.equal(xi, (grids[yi, :, dy:dy + 2, dx:dx + 2].flip(-1)[perm] if f
                                        else grids[yi, :, dy:dy + 2, dx:dx + 2]))]
            assert len(hits) == 1            # every sample is one window of its own grid, maybe flipped
            seen.add(hits[0][:2])
            flips += hits[0][2]
    assert len(seen) == 9 and 0 < flips < N
    data.set_epoch(0)
    again = [x for x, _ in data]
    data.set_epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(again, (x for x, _ in data)))
    data.set_epoch(1)
    assert not all(torch.equal(a, b) for a, b in zip(again, (x for x, _ in data)))
    with pytest.raises(ValueError, match="larger than the grid"):
        shifts.ShiftedBatches(grids, torch.arange(N), (5, 5))


def test_flip_averaged_head_averages_only_at_evaluation():
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 4))
    perm = torch.tensor([1, 0])
    model = shifts.FlipAveraged(head, perm)
    x = torch.randn(5, 2, 3, 3)
    assert torch.equal(model.train()(x), head(x))
    with torch.no_grad():
        ref = (head(x) + head(x.flip(-1)[:, perm])) / 2
        torch.testing.assert_close(model.eval()(x), ref)
