"""Method registry: one subpackage per method, imported lazily by name.

``methods.get("sci")`` imports ``methods.sci`` only, so a broken optional dependency of one method
never takes the others down (the pyiqa ``_lazy_import_arch`` idea). Each subpackage registers its
:class:`~methods.base.Method` subclass with :func:`register`.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from torch import nn

from methods.base import Method, Trainer, Variant

__all__ = ["Method", "Trainer", "Variant", "build", "get", "names", "register"]

#: public name -> module that registers it (kept in the order of the report's tables)
MODULES: dict[str, str] = {
    "input": "methods.identity",
    "sci": "methods.sci",
    "snr_aware": "methods.snr_aware",
    "enlightengan": "methods.enlightengan",
    "lgbpn": "methods.lgbpn",
    "apbsn": "methods.apbsn",
    "alen": "methods.alen",
}
_REGISTRY: dict[str, Method] = {}  # name -> method instance


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: register ``cls`` under ``cls.name``. A second registration is an error."""
    if not isinstance(cls, type) or not issubclass(cls, Method):
        raise TypeError(f"register expects a Method subclass, got {cls!r}")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise KeyError(f"method {cls.name!r} is already registered by {type(_REGISTRY[cls.name]).__module__}")
    if cls.default_variant not in cls.variants:
        raise ValueError(f"method {cls.name!r}: default variant {cls.default_variant!r} not in its variants")
    _REGISTRY[cls.name] = cls()
    return cls


def names() -> list[str]:
    """Every public method name, registered or not yet imported."""
    return list(MODULES)


def get(name: str) -> Method:
    """The registered method ``name``; ``KeyError`` with close matches when unknown."""
    if name not in _REGISTRY:
        if name not in MODULES:
            close = difflib.get_close_matches(str(name), MODULES, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise KeyError(f"unknown method {name!r}; registered: {', '.join(MODULES)}.{hint}")
        importlib.import_module(MODULES[name])
        if name not in _REGISTRY:
            raise KeyError(f"module {MODULES[name]} did not register a method named {name!r}")
    return _REGISTRY[name]


def build(name: str, variant: str = "default", **overrides: Any) -> nn.Module:
    """The inference network of method ``name`` in ``variant`` (DESIGN.md ▶ Methods)."""
    return get(name).build(variant, **overrides)
