"""What a notebook does first: resolve its parameters, seed, style, record.

.. code-block:: python

    run = patchbook.pages.session.start("cifar10-table", profile, overrides)
    P = run.params
    with run.timer("encode"):
        ...
    run.record("top1", 78.1, unit="%")
    run.footer()        # the page's wall time, CPU time and load average, recorded and shown
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from patchbook.pages import profiles, results
from patchbook.pages.plotting import use_style
from patchbook.pages.tables import Md, duration
from patchbook.runtime import describe_hardware, resolve_device, seed_everything


@dataclass
class Run:
    """One execution of a notebook at a profile."""

    notebook: str
    params: profiles.Params
    timings: dict[str, float] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    started: tuple[float, float] = field(default_factory=lambda: (time.perf_counter(), time.process_time()))

    @property
    def profile(self) -> str:
        return self.params["profile"]

    @property
    def device(self) -> str:
        """The device of the page: its ``device`` parameter resolved
        (:func:`patchbook.runtime.resolve_device`), ``"cpu"`` without one."""
        return resolve_device(self.params.get("device", "cpu"))

    def record(self, quantity: str, value: Any, **meta: Any) -> dict[str, Any]:
        """Record a measured value (see :func:`patchbook.pages.results.record`);
        :attr:`context` (say, the data a page measured on) is added to every record."""
        return results.record(self.notebook, quantity, value, profile=self.profile,
                              params=dict(self.params), **{**self.context, **meta})

    def footer(self, detail: str = "") -> Md:
        """Record the page's wall time (with CPU time, stage timings and the
        load average) and say it in one paragraph, with ``detail`` after it."""
        wall = time.perf_counter() - self.started[0]
        cpu = time.process_time() - self.started[1]
        load = os.getloadavg()[1]
        self.record("page wall time", wall, unit="s", cpu_seconds=cpu, timings=dict(self.timings),
                    load_average=load)
        cores = os.cpu_count() or 1
        shared = (f" (more than its {cores} cores: the machine was shared, so times are longer than on an idle one)"
                  if load > cores else "")
        stages = ", ".join(f"{k} {duration(v)}" for k, v in self.timings.items())
        return Md(f"Measured at {self.describe()}, load average {load:.1f}{shared}. This page took "
                  f"{duration(wall)} ({duration(cpu)} of CPU in this process; what was found in the cache from an "
                  f"earlier run cost nothing)" + (f": {stages}" if stages else "") + "."
                  + (f" {detail}" if detail else ""))

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
        return f"profile `{self.profile}` on {describe_hardware()}"


def start(notebook: str, profile: str = "laptop", overrides: dict | None = None) -> Run:
    """Resolve parameters, seed every generator and set the figure style."""
    params = profiles.resolve(notebook, profile, overrides)
    seed_everything(int(params.get("seed", 0)))
    _inline_figures()

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
