"""The HTML report: Python builds a plain context from the tables, small Jinja2 templates lay it out.

    llbench tables --out results/tables && llbench report --tables results/tables --out results/report/index.html

One :class:`jinja2.Environment` (autoescape on, :mod:`.environment`) formats the numbers with its filters, so
templates stay free of logic. Missing values render as "n/a", never as 0. The report renders from whatever
results exist: missing and failed cells are listed with their logs. Figures (matplotlib, Agg, :mod:`.figures`)
and the crops of the visual comparison are written beside ``index.html`` (``figures/``); the page loads nothing
from the network (its sorting script is ``assets/report.js``).

Modules: :mod:`.labels` (what only the report names), :mod:`.environment` (Jinja2 and filters), :mod:`.references`
(published numbers, checked against ``report/reference_numbers.schema.yaml``), :mod:`.lookup` (what the context
and the figures both look up), :mod:`.context` (the template context), :mod:`.figures`, :mod:`.page` (render).
"""

from llbench.report.context import context, verifications
from llbench.report.environment import TEMPLATES, anchor, environment, fmt, fmt_delta
from llbench.report.lookup import metric_info
from llbench.report.page import ASSETS, render
from llbench.report.references import REFERENCES, load_references

__all__ = [
    "ASSETS",
    "REFERENCES",
    "TEMPLATES",
    "anchor",
    "context",
    "environment",
    "fmt",
    "fmt_delta",
    "load_references",
    "metric_info",
    "render",
    "verifications",
]
