"""Render the report: the context through ``index.html``, with the static assets copied beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

from llbench.report.context import context
from llbench.report.environment import template
from llbench.workflow import REPO

ASSETS = REPO / "report" / "assets"


def render(
    tables: Path,
    out: Path,
    results: Path | None = None,
    configfile: str | list[str] | None = None,
    figures: bool = True,
) -> Path:
    """Render ``out`` (index.html), its figures and the static assets beside it."""
    from llbench.runtime import atomic_write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = context(Path(tables), out, results=results, configfile=configfile, figures=figures)
    html = template("index.html").render(**ctx)
    if ASSETS.is_dir():
        shutil.copytree(ASSETS, out.parent / "assets", dirs_exist_ok=True)
    atomic_write_text(out, html)
    return out
