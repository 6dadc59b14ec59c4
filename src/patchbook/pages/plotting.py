"""One figure style for the whole book, and small image-grid helpers."""

from __future__ import annotations

from typing import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 3.6),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "image.cmap": "gray",
}

# Published values are drawn in this colour and marker everywhere.
PUBLISHED = {"color": "0.35", "marker": "s", "linestyle": "--", "markerfacecolor": "none"}
MEASURED = {"color": "C0", "marker": "o", "linestyle": "-"}


def use_style() -> None:

    mpl.rcParams.update(STYLE)


def to_display(img: np.ndarray) -> np.ndarray:
    """``H x W``, ``H x W x 1``, ``H x W x 3`` or ``3 x H x W`` (uint8 or
    float in [0, 1]) to something ``imshow`` shows."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 1)
    return a


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] | None = None,
               ncols: int = 8, size: float = 1.2, suptitle: str | None = None):
    """A grid of images without axes; returns the figure."""

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_display(images[i]), interpolation="nearest" if np.asarray(images[i]).shape[0] <= 64 else None)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
