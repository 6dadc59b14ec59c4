"""Random crops and flips (patchbook.augment)."""

import pytest
import torch
import torch.nn.functional as F

from patchbook.augment import random_crop_flip


@pytest.mark.parametrize("mode,torch_mode", [("zeros", "constant"), ("reflect", "reflect")])
def test_every_output_is_a_window_of_the_padded_image(mode, torch_mode):
    x = torch.arange(3 * 2 * 6 * 6, dtype=torch.float32).reshape(3, 2, 6, 6)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)
    y = random_crop_flip(x, padding=2, padding_mode=mode, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    xp = F.pad(x, (2,) * 4, mode=torch_mode)
    for b in range(3):
        wins = [xp[b, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(y[b], w) or torch.equal(y[b], w.flip(-1)) for w in wins)


def test_draws_follow_the_documented_order():
    """Row offsets, column offsets, then flips: replaying the draws gives the output."""
    x = torch.rand(5, 1, 4, 4)
    y = random_crop_flip(x, padding=1, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 3, (5,), generator=g), torch.randint(0, 3, (5,), generator=g)
    flips = torch.rand(5, generator=g) < 0.5
    xp = F.pad(x, (1,) * 4)
    for b in range(5):
        w = xp[b, :, dy[b]:dy[b] + 4, dx[b]:dx[b] + 4]
        assert torch.equal(y[b], w.flip(-1) if flips[b] else w)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="padding_mode"):
        random_crop_flip(torch.zeros(1, 1, 4, 4), padding_mode="wrap")
    with pytest.raises(ValueError, match="padding"):
        random_crop_flip(torch.zeros(1, 1, 4, 4), padding=-1)
