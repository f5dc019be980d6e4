"""Method registry: every subpackage ``methods/<name>/`` is the method ``<name>``, imported lazily.

Adding a method = adding one package that registers its :class:`~methods.base.Method` subclass with
:func:`register` (``name`` = the package's name), plus one config line. ``methods.get("sci")`` imports
``methods.sci`` only, so a broken optional dependency of one method never takes the others down (the
pyiqa ``_lazy_import_arch`` idea). Modules (not packages) here are shared code: the interface
(``base``), building blocks used by several methods (``blindspot``, ``vgg``).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any

from torch import nn

from methods.base import Method, Trainer, Variant

__all__ = ["Method", "Trainer", "Variant", "build", "get", "names", "register"]

_REGISTRY: dict[str, Method] = {}  # name -> method instance


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: register ``cls`` under ``cls.name`` (its package's name). A second registration is an error."""
    if not isinstance(cls, type) or not issubclass(cls, Method):
        raise TypeError(f"register expects a Method subclass, got {cls!r}")
    package = cls.__module__.split(".")[1] if cls.__module__.startswith("methods.") else None
    if package is not None and package != cls.name:
        raise ValueError(f"method {cls.name!r} is registered by methods.{package}: a method's package bears its name")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise KeyError(f"method {cls.name!r} is already registered by {type(_REGISTRY[cls.name]).__module__}")
    method = cls()
    method.check()
    _REGISTRY[cls.name] = method
    return cls


def names() -> list[str]:
    """Every method name: the packages under ``methods/`` (registered or not yet imported), sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def get(name: str) -> Method:
    """The registered method ``name``; ``KeyError`` with close matches when unknown."""
    if name not in _REGISTRY:
        known = names()
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise KeyError(f"unknown method {name!r}; registered: {', '.join(known)}.{hint}")
        importlib.import_module(f"{__name__}.{name}")
        if name not in _REGISTRY:
            raise KeyError(f"package methods/{name}/ did not register a method named {name!r}")
    return _REGISTRY[name]


def build(name: str, variant: str | None = None, **overrides: Any) -> nn.Module:
    """The inference network of method ``name`` in ``variant`` (DESIGN.md ▶ Methods)."""
    return get(name).build(variant, **overrides)
