"""The report's one Jinja2 environment (autoescape on) and the filters that format its numbers.

Templates stay free of logic: numbers are formatted here, and missing values render as "n/a", never as 0.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

from llbench.workflow import REPO

TEMPLATES = REPO / "report" / "templates"


def present(value: Any) -> bool:
    """A usable number or text (not None, NaN or an empty string)."""
    if value is None:
        return False
    if isinstance(value, float | np.floating):
        return not math.isnan(value)
    if isinstance(value, str):
        return value.strip() != "" and value.lower() != "nan"
    return True


def fmt(value: Any, decimals: int | str = 2) -> str:
    """A number with ``decimals`` places (``"int"``: thousands separators, ``"sig"``: 3 significant digits);
    NaN / None -> ``n/a``."""
    if not present(value):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        if decimals == "int":
            return f"{round(v):,}"
        if decimals == "sig":
            return _significant(v)
        return f"{v:,.{int(decimals)}f}"
    return str(value)


def _significant(v: float, digits: int = 3) -> str:
    """``v`` rounded to ``digits`` significant digits, with thousands separators."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    places = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{places}f}"


def fmt_delta(value: Any, decimals: int | str = 2) -> str:
    """A signed difference (``+0.12`` / ``−0.12``); n/a when missing."""
    if not present(value):
        return "n/a"
    text = fmt(abs(float(value)), decimals)
    if float(value) == 0 or text.strip("0.,") == "":
        return f"±{text}"
    return ("+" if float(value) > 0 else "\u2212") + text


def sortkey(value: Any) -> str:
    """``data-sort`` attribute: the raw number, or empty (sorted last) for n/a."""
    if not present(value):
        return ""
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value))
    return str(value)


def short(value: Any, n: int = 10) -> str:
    """The first ``n`` characters (a commit hash, say); n/a when missing."""
    return str(value)[:n] if present(value) else "n/a"


def anchor(path: str) -> str:
    """An HTML id for a cell path: readable, restricted to [a-z0-9-], unique by a short hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(path).lower().removeprefix("results/")).strip("-")[:80]
    return f"cell-{slug}-{hashlib.sha1(str(path).encode()).hexdigest()[:6]}"


@functools.cache
def environment() -> Environment:
    """The report's one environment (built once): ``report/templates``, autoescaped, with the filters above."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(fmt=fmt, fmt_delta=fmt_delta, sortkey=sortkey, short=short, anchor=anchor)
    env.tests["present"] = present
    return env


def template(name: str) -> Template:
    """A template of the report's one environment (autoescaped)."""
    return environment().get_template(name)
