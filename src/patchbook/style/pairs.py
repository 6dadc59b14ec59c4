"""The photo-painting pairs of the Monet comparison, kept as data in
``pairs.yaml`` beside this module: for each, a photograph of one of Monet's
motifs, the canvas of the same motif and view (held out), another canvas of
the same series (the style the methods use), and the corresponding points
that align the photograph with the held-out canvas (:mod:`.alignment`).

:func:`load` reads and checks the file; :func:`get` gives one pair by its id;
:func:`canvases` lists every painting the pairs name (kept out of the
decoders' training data, :mod:`.decoder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

PATH = Path(__file__).with_name("pairs.yaml")
#: At least this many points per pair: a homography needs 4, the leave-one-out check 5.
MIN_POINTS = 5


@dataclass(frozen=True)
class PairSpec:
    """One pair of ``pairs.yaml``: names under the data root's ``photos/`` and
    ``paintings/``, and ``N x 2`` corresponding points in [0, 1] coordinates
    (``u`` across, ``v`` down) of the photograph and of the held-out canvas."""

    id: str
    motif: str
    photo: str
    held_out: str
    style: str
    photo_points: np.ndarray
    canvas_points: np.ndarray


def _parse(entry: dict, where: str) -> PairSpec:
    missing = [k for k in ("id", "motif", "photo", "held_out", "style", "points") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    if entry["held_out"] == entry["style"]:
        raise ValueError(f"{where}: the style canvas must differ from the held-out canvas")
    pts = np.asarray(entry["points"], dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise ValueError(f"{where}: points must be [photo u, photo v, canvas u, canvas v] rows, got shape {pts.shape}")
    if len(pts) < MIN_POINTS:
        raise ValueError(f"{where}: {len(pts)} points, at least {MIN_POINTS} needed")
    if not np.all((pts >= 0) & (pts <= 1)):
        raise ValueError(f"{where}: point coordinates must be in [0, 1]")
    return PairSpec(str(entry["id"]), str(entry["motif"]), str(entry["photo"]), str(entry["held_out"]),
                    str(entry["style"]), pts[:, :2], pts[:, 2:])


def read(path: str | Path) -> dict[str, PairSpec]:
    """``{id: PairSpec}`` of a pairs file, in the file's order; raises
    ``ValueError`` on a malformed entry or a repeated id."""
    entries = (yaml.safe_load(Path(path).read_text()) or {}).get("pairs") or []
    out: dict[str, PairSpec] = {}
    for i, entry in enumerate(entries):
        spec = _parse(entry, f"{Path(path).name}, pair {i} ({entry.get('id', '?')})")
        if spec.id in out:
            raise ValueError(f"{Path(path).name}: pair id {spec.id!r} appears twice")
        out[spec.id] = spec
    return out


@lru_cache(maxsize=1)
def load() -> dict[str, PairSpec]:
    """The pairs of this package's ``pairs.yaml``."""
    return read(PATH)


def get(pair_id: str) -> PairSpec:
    """The pair ``pair_id`` of ``pairs.yaml``."""
    pairs = load()
    if pair_id not in pairs:
        raise KeyError(f"no pair {pair_id!r} in {PATH.name}; pairs are {list(pairs)}")
    return pairs[pair_id]


def canvases() -> tuple[str, ...]:
    """Every painting (held out or style) the pairs name, sorted."""
    return tuple(sorted({n for p in load().values() for n in (p.held_out, p.style)}))
