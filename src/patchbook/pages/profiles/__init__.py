"""Named scales for every notebook: ``smoke``, ``laptop`` and ``paper``.

Each notebook ``notebooks/<name>.md`` has a module ``profiles/<name with _>.py``
defining ``PROFILES = {"smoke": {...}, "laptop": {...}, "paper": {...}}``
(the same keys in every profile) and, optionally, ``DOC = {key: "what it
is"}``. :func:`resolve` turns (notebook, profile, overrides) into parameters.

- ``smoke``: seconds, for the test suite.
- ``laptop``: the default, what the book runs on a 2-core CPU.
- ``paper``: the published settings, for GPUs.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

PROFILE_NAMES = ("smoke", "laptop", "paper")


class ProfileError(ValueError):
    """An unknown notebook, profile or parameter, or a value of the wrong type."""


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
    profile or parameter name, and for a value of the wrong type.
    """
    profiles = table(notebook)
    if profile not in profiles:
        raise ProfileError(f"{notebook}: unknown profile {profile!r}; choose one of {sorted(profiles)}")
    params = Params(profiles[profile])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ProfileError(f"{notebook}: unknown parameter {key!r}; parameters are {sorted(params)}")
        params[key] = _coerce(notebook, key, value, params[key])
    params["profile"] = profile
    return params
