"""What the context and the figures both look up: cell values, metric columns, the method registry, the profiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from llbench.report.environment import present
from llbench.vocabulary import KINDS, metric


def as_text(value: Any) -> str:
    """A table value as text; empty when missing (None, NaN, empty)."""
    return str(value) if present(value) else ""


def as_number(value: Any) -> float:
    """A table value as a float; NaN when it is not a number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def flag(value: Any) -> bool:
    """A table's boolean cell: True only for a true boolean (missing values are False, never truthy NaN)."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def metric_info(name: str) -> dict[str, Any]:
    """Label, direction, decimals, whether it is a secondary protocol column, and its protocol text
    (:func:`llbench.vocabulary.metric`: the canonical metrics and the columns methods declare)."""
    m = metric(name)
    return {
        "key": name,
        "label": m.label,
        "higher_better": m.higher_better,
        "decimals": m.decimals,
        "secondary": not m.primary,
        "protocol": m.protocol,
    }


# ---- the method registry ----------------------------------------------------------------------------
def registered_method(name: str):
    """The registered method ``name``, or None (the report also renders results of unregistered methods)."""
    import methods

    try:
        return methods.get(name)
    except KeyError:
        return None


def default_variant(method: str) -> str:
    m = registered_method(method)
    return m.default_variant if m is not None else "default"


def canonical_variant(method: str, variant: str | None) -> str:
    """A reference number's variant (``None`` / ``"default"``: the method's default variant); cells are
    canonical already (resolved at config validation)."""
    return default_variant(method) if variant in (None, "default") else variant


def is_baseline(method: str) -> bool:
    """A method evaluated without training (the ``input`` row every table starts with)."""
    m = registered_method(method)
    return m is not None and not m.trained


def row_label(method: str) -> str:
    """How a method's rows are labelled: a baseline says that it is no method."""
    return f"{method} (no method)" if is_baseline(method) else method


def baseline_labels() -> str:
    """The labels of every registered baseline, for the report's notes."""
    import methods

    return " / ".join(row_label(name) for name in methods.names() if is_baseline(name))


def variant_doc(method: str, variant: str) -> str:
    m = registered_method(method)
    try:
        return m.variant(variant).doc if m is not None else ""
    except KeyError:
        return ""


def section_task(kind: str, method: str) -> str:
    """The task (report section) of a dataset kind, or of the method where the kind is unknown."""
    if kind in KINDS:
        return KINDS[kind].task
    m = registered_method(method)
    return m.task if m is not None else "enhance"


# ---- profiles ----------------------------------------------------------------------------------------
class Profiles:
    """The rows of ``profile.csv`` by (method, variant, size), found under the variant's name or its default's."""

    def __init__(self, prof: pd.DataFrame):
        self.rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in prof.to_dict("records") if not prof.empty else []:
            self.rows[(str(r["method"]), str(r["variant"]), str(r["size"]))] = r

    def get(self, method: str, variant: str, size: str | None) -> dict[str, Any] | None:
        if not size:
            return None
        return self.rows.get((method, variant, size)) or self.rows.get(
            (method, canonical_variant(method, variant), size)
        )

    def params(self, method: str, variant: str) -> float:
        for (m, v, _), r in self.rows.items():
            if m == method and v in (variant, canonical_variant(method, variant)):
                return as_number(r.get("params"))
        return math.nan
