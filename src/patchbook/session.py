"""What a notebook does first: resolve its parameters, seed, style, record.

.. code-block:: python

    run = patchbook.session.start("cifar10-table", profile, overrides)
    P = run.params
    with run.timer("encode"):
        ...
    run.record("top1", 0.78, unit="fraction", published=0.826, source="Thiry et al. 2021")
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from . import profiles, results


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


@dataclass
class Run:
    """One execution of a notebook at a profile."""

    notebook: str
    params: profiles.Params
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        return self.params["profile"]

    def record(self, quantity: str, value: Any, **meta: Any) -> dict[str, Any]:
        """Record a measured value (see :func:`patchbook.results.record`)."""
        return results.record(self.notebook, quantity, value, profile=self.profile,
                              params=dict(self.params), **meta)

    @contextlib.contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Time a block; the wall time in seconds lands in ``timings[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    def describe(self) -> str:
        """One line saying at what scale and on what machine this ran."""
        hw = results.hardware()
        where = hw["gpu"] or f"{hw['cpu']} ({hw['cores']} cores)"
        return f"profile `{self.profile}` on {where}"


def start(notebook: str, profile: str = "laptop", overrides: dict | None = None) -> Run:
    """Resolve parameters, seed every generator and set the figure style."""
    params = profiles.resolve(notebook, profile, overrides)
    seed_everything(int(params.get("seed", 0)))
    _inline_figures()
    from .plotting import use_style

    use_style()
    return Run(notebook, params)


def _inline_figures() -> None:
    """Show figures inline when running in a Jupyter kernel, even if
    ``MPLBACKEND`` (set for headless tests) asked for Agg."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        shell.run_line_magic("matplotlib", "inline")
