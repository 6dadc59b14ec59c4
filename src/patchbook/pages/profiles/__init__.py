"""Named scales for every notebook: ``smoke``, ``laptop`` and ``paper``.

Each notebook ``notebooks/<name>.md`` has a module ``profiles/<name with _>.py``
defining ``PROFILES = {"smoke": {...}, "laptop": {...}, "paper": {...}}``
(the same keys in every profile), optionally ``DOC = {key: "what it is"}``,
and ``BOUNDS = {key: bound}``: the values every parameter may take (an
:class:`Int` or :class:`Real` range, a :class:`Choice`, a :class:`ListOf`
such values element by element, ...; see :class:`Bound`). :func:`resolve`
turns (notebook, profile, overrides) into parameters and refuses, with a
one-line :class:`ProfileError`, a value of the wrong type or outside its
bound.

- ``smoke``: seconds, for the test suite.
- ``laptop``: the default, what the book runs on a 2-core CPU.
- ``paper``: the published settings, for GPUs.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from typing import Any, Mapping

PROFILE_NAMES = ("smoke", "laptop", "paper")


class ProfileError(ValueError):
    """An unknown notebook, profile or parameter, a value of the wrong type or
    outside its declared bound."""


class Params(dict):
    """A dict of parameters that also reads as attributes (``P.n_train``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; parameters are {sorted(self)}") from None


def _module_name(notebook: str) -> str:
    return notebook.replace("-", "_")


def notebooks() -> list[str]:
    """Names of the notebooks that have profiles."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def table(notebook: str) -> dict[str, dict[str, Any]]:
    """``{profile: {parameter: value}}`` of a notebook."""
    if notebook not in notebooks():
        raise ProfileError(f"Unknown notebook {notebook!r}; notebooks with profiles: {notebooks()}")
    return importlib.import_module(f"{__name__}.{_module_name(notebook)}").PROFILES


def docs(notebook: str) -> dict[str, str]:
    """``{parameter: description}`` where the notebook's module gives one."""
    table(notebook)
    return getattr(importlib.import_module(f"{__name__}.{_module_name(notebook)}"), "DOC", {})


def bounds(notebook: str) -> dict[str, "Bound"]:
    """``{parameter: bound}`` of a notebook (its module's ``BOUNDS``)."""
    table(notebook)
    return getattr(importlib.import_module(f"{__name__}.{_module_name(notebook)}"), "BOUNDS", {})


def _coerce(notebook: str, key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the profile's ``default``."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return type(default)(value)
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ProfileError(
        f"{notebook}: parameter {key!r} expects a {type(default).__name__} "
        f"(like {default!r}), got {value!r} of type {type(value).__name__}"
    )


def resolve(notebook: str, profile: str = "laptop", overrides: dict | None = None) -> Params:
    """The parameters of ``notebook`` at ``profile``, with ``overrides`` applied.

    Raises :class:`ProfileError` listing the choices for an unknown notebook,
    profile or parameter name, and for a value of the wrong type or outside
    the parameter's bound (:func:`check`; the profile's own values included).
    """
    profiles = table(notebook)
    if profile not in profiles:
        raise ProfileError(f"{notebook}: unknown profile {profile!r}; choose one of {sorted(profiles)}")
    params = Params(profiles[profile])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ProfileError(f"{notebook}: unknown parameter {key!r}; parameters are {sorted(params)}")
        params[key] = _coerce(notebook, key, value, params[key])
    check(notebook, params)
    params["profile"] = profile
    return params


def check(notebook: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`ProfileError` (one line: the page, the parameter, the
    value and what was expected) for the first parameter of ``params``
    outside its bound, or without one."""
    declared = bounds(notebook)
    for key, value in params.items():
        if key == "profile":
            continue
        if key not in declared:
            raise ProfileError(f"{notebook}: parameter {key!r} has no declared bound (add it to BOUNDS in "
                               f"patchbook/pages/profiles/{_module_name(notebook)}.py)")
        problem = declared[key].problem(value, Context(params, declared))
        if problem is not None:
            where, bad, expected = problem
            name = f"{key}{where}" if where else repr(key)
            raise ProfileError(f"{notebook}: parameter {name} = {bad!r} is out of bounds; expected {expected}")


# ----------------------------------------------------------------- bounds ----

class Context:
    """What a :class:`Bound` may refer to: the other parameters (by name, e.g. an
    upper limit ``"k"``) and the page's bounds (for rows of overrides)."""

    def __init__(self, params: Mapping[str, Any], bounds: Mapping[str, "Bound"]):
        self.params, self.bounds = params, bounds

    def limit(self, limit: float | str | None) -> tuple[Any, str]:
        """``(value, text)`` of a limit: a number, or the name of a parameter."""
        if isinstance(limit, str):
            value = self.params.get(limit)
            return value, f"{limit} = {value!r}"
        return limit, repr(limit)

    def with_params(self, changes: Mapping[str, Any]) -> "Context":
        return Context({**self.params, **changes}, self.bounds)


Problem = tuple[str, Any, str]  # (where inside the value, e.g. "[1]"; the bad value; what was expected)


class Bound:
    """The values a parameter may take.

    :meth:`problem` returns ``None`` for a value inside the bound, else
    ``(where, value, expected)``: where inside the parameter (``""``,
    ``"[2]"``, ``"['n_iter']"``), the offending value and a phrase saying
    what was expected (``"an int >= 1"``).
    """

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        raise NotImplementedError

    def expected(self, ctx: Context) -> str:
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Range(Bound):
    """Numbers between ``lo`` and ``hi`` (either a number, the name of another
    parameter, or ``None``: unbounded), each limit closed unless ``*_open``."""

    kind = "a number"

    def __init__(self, lo: float | str | None = None, hi: float | str | None = None, *,
                 lo_open: bool = False, hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def accepts_type(self, value: Any) -> bool:
        return _is_number(value) and math.isfinite(value)

    def expected(self, ctx: Context) -> str:
        lo_text, hi_text = ctx.limit(self.lo)[1], ctx.limit(self.hi)[1]
        if self.lo is not None and self.hi is not None:
            return (f"{self.kind} in {'(' if self.lo_open else '['}{lo_text}, {hi_text}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{self.kind} {'>' if self.lo_open else '>='} {lo_text}"
        if self.hi is not None:
            return f"{self.kind} {'<' if self.hi_open else '<='} {hi_text}"
        return "a finite number" if self.kind == "a number" else self.kind

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        ok = self.accepts_type(value)
        lo, _ = ctx.limit(self.lo)
        hi, _ = ctx.limit(self.hi)
        if ok and _is_number(lo):
            ok = value > lo if self.lo_open else value >= lo
        if ok and _is_number(hi):
            ok = value < hi if self.hi_open else value <= hi
        return None if ok else ("", value, self.expected(ctx))


class Int(_Range):
    """Integers in ``[lo, hi]`` (``Int(1)``: a count; ``Int(0)``: a count
    where 0 means all, or a seed; ``Int(2, "k")``: at most parameter ``k``)."""

    kind = "an int"

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)


class Real(_Range):
    """Finite numbers in a range: ``Real(0)`` (>= 0), ``Real(0, lo_open=True)``
    (> 0), ``Real(0, 1, lo_open=True)`` (a fraction in (0, 1])."""


class Choice(Bound):
    """One of ``options``."""

    def __init__(self, *options: Any):
        self.options = options

    def expected(self, ctx: Context) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        ok = any(value == o and type(value) is type(o) for o in self.options)
        return None if ok else ("", value, self.expected(ctx))


class Flag(Choice):
    """``True`` or ``False``."""

    def __init__(self):
        super().__init__(True, False)


class Text(Bound):
    """A non-empty string matching ``pattern`` (a full match; described by
    ``what``), e.g. ``Text(r"linear|bottleneck [1-9][0-9]*", "'linear' or 'bottleneck <n>'")``."""

    def __init__(self, pattern: str = r".+", what: str = "a non-empty string"):
        self.pattern, self.what = re.compile(pattern), what

    def expected(self, ctx: Context) -> str:
        return self.what

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        ok = isinstance(value, str) and self.pattern.fullmatch(value) is not None
        return None if ok else ("", value, self.what)


class DataFile(Text):
    """A file of the data root, as a relative path without ``..``."""

    def __init__(self, under: str = "the data root"):
        super().__init__(r"(?!/)(?!.*(^|/)\.\.(/|$))[^\x00]+", f"a relative path of a file under {under}")


class OrNone(Bound):
    """``None`` (its meaning: ``means``) or a value inside ``bound``."""

    def __init__(self, bound: Bound, means: str = ""):
        self.bound, self.means = bound, means

    def expected(self, ctx: Context) -> str:
        return f"None{f' ({self.means})' if self.means else ''} or {self.bound.expected(ctx)}"

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        if value is None:
            return None
        inner = self.bound.problem(value, ctx)
        if inner is None:
            return None
        where, bad, expected = inner
        return (where, bad, self.expected(ctx)) if where == "" else inner


class ListOf(Bound):
    """A list (or tuple) of ``min_len`` to ``max_len`` elements, each inside
    ``element``."""

    def __init__(self, element: Bound, min_len: int = 1, max_len: int | None = None):
        self.element, self.min_len, self.max_len = element, min_len, max_len

    def expected(self, ctx: Context) -> str:
        if self.max_len == self.min_len:
            n = f"{self.min_len}"
        elif self.max_len is None:
            n = f"at least {self.min_len}"
        else:
            n = f"{self.min_len} to {self.max_len}"
        return f"a list of {n} element(s), each {self.element.expected(ctx)}"

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        if not isinstance(value, (list, tuple)) or len(value) < self.min_len or (
                self.max_len is not None and len(value) > self.max_len):
            return "", value, self.expected(ctx)
        for i, v in enumerate(value):
            inner = self.element.problem(v, ctx)
            if inner is not None:
                return (f"[{i}]" + inner[0],) + inner[1:]
        return None


class Keys(Bound):
    """A dict whose keys are among those named here (none required), each
    value inside its bound: the keyword arguments of a function, say."""

    def __init__(self, **bounds: Bound):
        self.bounds = bounds

    def expected(self, ctx: Context) -> str:
        return f"a dict with keys among {sorted(self.bounds)}"

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        if not isinstance(value, dict):
            return "", value, self.expected(ctx)
        for key, v in value.items():
            if key not in self.bounds:
                return "", value, f"{self.expected(ctx)} (not {key!r})"
            inner = self.bounds[key].problem(v, ctx)
            if inner is not None:
                return (f"[{key!r}]" + inner[0],) + inner[1:]
        return None


class Overrides(Bound):
    """A dict of changes to the page's own parameters (a row of a table),
    each checked against the page's bound for it, with the row's other
    changes applied (so ``{"epochs": 175, "milestones": [100, 150]}`` is
    read together); ``extra`` bounds keys that are not page parameters."""

    def __init__(self, **extra: Bound):
        self.extra = extra

    def _bounds(self, ctx: Context) -> dict[str, Bound]:
        """The page's bounds but that of the rows themselves, and ``extra``."""
        rows = [k for k, b in ctx.bounds.items() if isinstance(getattr(b, "element", b), Overrides)]
        return {**{k: b for k, b in ctx.bounds.items() if k not in rows}, **self.extra}

    def expected(self, ctx: Context) -> str:
        return f"a dict of parameter changes with keys among {sorted(self._bounds(ctx))}"

    def problem(self, value: Any, ctx: Context) -> Problem | None:
        if not isinstance(value, dict):
            return "", value, self.expected(ctx)
        bounds, row = self._bounds(ctx), ctx.with_params(value)
        for key, v in value.items():
            if key not in bounds:
                return "", value, f"{self.expected(ctx)} (not {key!r})"
            inner = bounds[key].problem(v, row)
            if inner is not None:
                return (f"[{key!r}]" + inner[0],) + inner[1:]
        return None


# ------------------------------------------------ bounds several pages share ----

SEED = Int(0)
COUNT = Int(1)
DEVICE = Choice("auto", "cpu", "cuda")
WHITENING = Choice("zca", "pca", "none")      # patchbook.patchknn.pipeline.WHITENINGS
HEAD = Choice("factorized", "linear")        # patchbook.patchknn.pipeline.HEADS
FORMULATION = Choice("ours", "authors")       # patchbook.patchknn.encoding.FORMULATIONS
FRACTION = Real(0, 1, lo_open=True)
POSITIVE = Real(0, lo_open=True)
NON_NEGATIVE = Real(0)
MOMENTUM = Real(0, 1, hi_open=True)
STYLE_METHODS = Choice("gatys", "strotss", "adain", "wct", "mst", "magenta")  # patchbook.style.methods.METHODS
DECODERS = Choice("smoke", "laptop", "paper")  # patchbook.style.decoder.PRESETS
# keyword arguments of patchbook.style.optimize.gatys and .strotss a page may set
GATYS = Keys(n_iter=COUNT, style_weight=NON_NEGATIVE, content_weight=NON_NEGATIVE, tv_weight=NON_NEGATIVE,
             init=Choice("content", "noise"), optimizer=Choice("lbfgs", "adam"), lr=OrNone(POSITIVE),
             normalize=Flag(), style_scale=POSITIVE, content_layers=ListOf(Text()),
             style_layers=ListOf(Text()), pool=Text(), arch=Text())
STROTSS = Keys(n_iter=COUNT, lr=POSITIVE, min_size=Int(8), n_samples=COUNT, n_style=COUNT,
               covariance=Choice("full", "layer"), content_weight=NON_NEGATIVE,
               ot=Choice("relaxed", "sinkhorn"), sinkhorn_eps=POSITIVE, sinkhorn_iter=COUNT,
               moment_weight=NON_NEGATIVE, pyramid_depth=COUNT, decay_at=FRACTION)
