"""Photo-painting alignment: a homography fitted to corresponding points, the
photograph warped into the canvas' frame, and the region both cover.

A photograph and a canvas of the same motif differ in viewpoint and framing;
a plane-to-plane homography ``H`` (3 x 3, defined up to scale) maps a point of
the photograph ``(x, y)`` to the canvas point ``(x', y')`` with
``(x' w, y' w, w) = H (x, y, 1)``. Points are in pixels of the image they lie
in, with ``(0, 0)`` the top-left corner of the image and ``(W, H)`` its
bottom-right corner (a pixel's centre is at ``(j + 0.5, i + 0.5)``), the
convention of :func:`torch.nn.functional.grid_sample` with
``align_corners=False``; :func:`to_pixels` converts the resolution-free
coordinates in [0, 1] kept in the pair data (:mod:`.pairs`).

- :func:`fit_homography`: the normalised direct linear transform (Hartley &
  Zisserman, *Multiple View Geometry*, algorithm 4.2), then a Gauss-Newton
  refinement of the reprojection error in the canvas;
- :func:`project`, :func:`residuals`, :func:`leave_one_out`: where points land,
  how far from their partners, and how far a point is predicted when left out
  of the fit (the held-out check);
- :func:`warp`: the photograph resampled in the canvas' frame, with the mask of
  the canvas pixels it covers; :func:`largest_rectangle`: the largest
  axis-aligned rectangle inside such a mask (where an aligned comparison can
  crop both images).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import least_squares

from .images import to_tensor


def _points(p, what: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{what} must be N x 2 points (x, y), got shape {a.shape}")
    return a


def to_pixels(uv, width: float, height: float) -> np.ndarray:
    """Coordinates in [0, 1] of an image (``u`` across, ``v`` down) to pixels of
    that image at ``width x height``: ``(u W, v H)``."""
    return _points(uv, "coordinates") * np.array([width, height], dtype=np.float64)


def _normaliser(p: np.ndarray) -> np.ndarray:
    """The similarity taking ``p`` to centroid 0 and mean distance sqrt(2) (Hartley)."""
    c = p.mean(0)
    d = np.sqrt(((p - c) ** 2).sum(1)).mean()
    if d <= 0:
        raise ValueError("the points are all the same: no homography can be fitted")
    s = np.sqrt(2) / d
    return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1.0]])


def project(H: np.ndarray, p) -> np.ndarray:
    """The points ``p`` (``N x 2``) mapped by the homography ``H``: ``N x 2``."""
    p = _points(p, "points")
    q = np.c_[p, np.ones(len(p))] @ np.asarray(H, dtype=np.float64).T
    return q[:, :2] / q[:, 2:3]


def _dlt(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    Ts, Td = _normaliser(src), _normaliser(dst)
    s = np.c_[src, np.ones(len(src))] @ Ts.T
    d = np.c_[dst, np.ones(len(dst))] @ Td.T
    rows = []
    for (x, y, w), (u, v, t) in zip(s, d):
        rows.append([0, 0, 0, -t * x, -t * y, -t * w, v * x, v * y, v * w])
        rows.append([t * x, t * y, t * w, 0, 0, 0, -u * x, -u * y, -u * w])
    A = np.asarray(rows)
    _, sv, vt = np.linalg.svd(A)
    if len(src) >= 4 and sv[7] < 1e-9 * sv[0]:
        raise ValueError("degenerate points (three or more on a line, or repeated): the homography is not determined")
    Hn = vt[-1].reshape(3, 3)
    H = np.linalg.inv(Td) @ Hn @ Ts
    return H / H[2, 2] if abs(H[2, 2]) > 1e-12 else H / np.linalg.norm(H)


def fit_homography(src, dst, refine: bool = True) -> np.ndarray:
    """The homography ``H`` (3 x 3, ``H[2, 2] = 1``) with ``project(H, src) ~ dst``.

    ``src`` and ``dst`` are ``N x 2`` corresponding points, ``N >= 4``, no three
    of four on a line. The normalised DLT minimises an algebraic error (exact
    for exact correspondences); with ``refine`` the result is polished by
    least squares on the distances ``|project(H, src) - dst|`` in ``dst``'s
    pixels, the error :func:`residuals` reports."""
    src, dst = _points(src, "src"), _points(dst, "dst")
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} source points for {len(dst)} destination points")
    if len(src) < 4:
        raise ValueError(f"a homography needs at least 4 point pairs, got {len(src)}")
    H = _dlt(src, dst)
    if refine and len(src) > 4:
        fun = lambda h: (project(np.append(h, 1.0).reshape(3, 3), src) - dst).ravel()  # noqa: E731
        h = least_squares(fun, H.ravel()[:8], method="lm").x
        H = np.append(h, 1.0).reshape(3, 3)
    return H


def residuals(H: np.ndarray, src, dst) -> np.ndarray:
    """Distances ``|project(H, src_i) - dst_i|`` (``N``), in ``dst``'s units."""
    return np.sqrt(((project(H, src) - _points(dst, "dst")) ** 2).sum(1))


def rms(x) -> float:
    """Root mean square of distances."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x ** 2)))


def leave_one_out(src, dst, refine: bool = True) -> np.ndarray:
    """For each point pair ``i``: the distance between ``dst_i`` and ``src_i``
    mapped by the homography fitted to the other pairs (``N``; needs ``N >= 5``).
    A held-out check of the alignment: small when every point agrees with the
    others, large when one is misplaced or the scene is far from a plane."""
    src, dst = _points(src, "src"), _points(dst, "dst")
    if len(src) < 5:
        raise ValueError(f"leaving one point out needs at least 5 point pairs, got {len(src)}")
    out = np.empty(len(src))
    for i in range(len(src)):
        keep = np.arange(len(src)) != i
        H = fit_homography(src[keep], dst[keep], refine=refine)
        out[i] = residuals(H, src[i:i + 1], dst[i:i + 1])[0]
    return out


def warp(image, H: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The image ``3 x h x w`` resampled (bilinear) in the frame of a canvas of
    ``size = (H_c, W_c)`` pixels, where ``H`` maps the image's pixels to the
    canvas': returns ``(3 x H_c x W_c, mask H_c x W_c)``, the mask true where a
    canvas pixel's centre comes from inside the image (elsewhere the warped
    image is 0)."""
    img = to_tensor(image)
    h, w = img.shape[-2:]
    hc, wc = size
    ys, xs = np.mgrid[0:hc, 0:wc]
    centres = np.c_[xs.ravel() + 0.5, ys.ravel() + 0.5]
    src = project(np.linalg.inv(H), centres)
    inside = (src[:, 0] >= 0) & (src[:, 0] <= w) & (src[:, 1] >= 0) & (src[:, 1] <= h)
    grid = np.stack([src[:, 0] / w * 2 - 1, src[:, 1] / h * 2 - 1], -1).reshape(1, hc, wc, 2)
    out = F.grid_sample(img[None], torch.from_numpy(grid).to(img.dtype), mode="bilinear",
                        padding_mode="border", align_corners=False)[0]
    mask = torch.from_numpy(inside.reshape(hc, wc))
    return out * mask, mask


def largest_rectangle(mask) -> tuple[int, int, int, int]:
    """The largest-area axis-aligned rectangle of true pixels in a 2-d boolean
    mask, as ``(top, left, bottom, right)`` (bottom and right exclusive); the
    first found on a tie. Raises on a mask with no true pixel."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-d mask, got shape {m.shape}")
    heights = np.zeros(m.shape[1], dtype=np.int64)
    best, box = 0, None
    for i, row in enumerate(m):
        heights = np.where(row, heights + 1, 0)
        stack: list[int] = []  # columns with increasing heights
        for j in range(len(heights) + 1):
            hj = heights[j] if j < len(heights) else 0
            while stack and heights[stack[-1]] >= hj:
                top = heights[stack.pop()]
                left = stack[-1] + 1 if stack else 0
                area = int(top) * (j - left)
                if area > best:
                    best, box = area, (i + 1 - int(top), left, i + 1, j)
            stack.append(j)
    if box is None:
        raise ValueError("the mask has no true pixel: the photograph covers none of the canvas")
    return box
