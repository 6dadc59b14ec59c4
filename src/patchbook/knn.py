"""The k-nearest-atom selection at the heart of the patch code (reference).

For whitened patches ``x_i`` and whitened atoms ``d_j`` the squared distance
is ``||x_i||^2 + s_ij`` with the *score* ``s_ij = ||d_j||^2 - 2 <x_i, d_j>``;
the ``||x_i||^2`` term does not change the ranking within a row, so the
selection works on scores, which one matrix product gives.

The code of row ``i`` has ones at the ``K`` atoms of smallest score; ties are
broken towards the lower atom index, i.e. atoms are ranked by
``(s_ij, j)``. Every faster implementation must give exactly this mask on the
same score matrix.
"""

from __future__ import annotations

import torch


def scores(x: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    """``s = ||d||^2 - 2 x d^T`` for ``x`` ``n x d`` and ``atoms`` ``m x d``; ``n x m``."""
    return (atoms * atoms).sum(1)[None, :] - 2.0 * (x @ atoms.T)


def knn_mask_reference(s: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``n x m`` mask of the ``k`` smallest entries of each row of ``s``,
    ties broken towards the lower column index (a stable sort: slow, exact)."""
    n, m = s.shape
    if not 0 <= k <= m:
        raise ValueError(f"k must be in [0, {m}], got {k}")
    order = torch.sort(s, dim=1, stable=True).indices[:, :k]
    mask = torch.zeros(n, m, dtype=torch.bool, device=s.device)
    mask.scatter_(1, order, True)
    return mask


def knn_mask(s: torch.Tensor, k: int) -> torch.Tensor:
    """Same result as :func:`knn_mask_reference`, the implementation the
    encoder uses (may be replaced by a faster exact one)."""
    return knn_mask_reference(s, k)
