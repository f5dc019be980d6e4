"""The published numbers of ``report/reference_numbers.yaml``, checked against its JSON Schema.

``report/reference_numbers.schema.yaml`` (draft 2020-12) checks the shape of every entry; the one check it leaves
to Python is the dataset name, against :data:`~llbench.report.labels.REAL_DATASETS`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from llbench.report.labels import REAL_DATASETS
from llbench.workflow import REPO

REFERENCES = REPO / "report" / "reference_numbers.yaml"
SCHEMA = REPO / "report" / "reference_numbers.schema.yaml"
#: the values of the optional keys an entry leaves out
_DEFAULTS = {
    "variant": None,
    "dataset": None,
    "compare_to": None,
    "comparable": True,
    "note": "",
    "tag": "",
    "size": None,
}
_TYPE_NAMES = {
    "array": "a list",
    "boolean": "true or false",
    "integer": "an integer",
    "null": "null",
    "number": "a number",
    "object": "a mapping",
    "string": "a string",
}


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _where(path: Path, index: int, entry: Any) -> str:
    return f"{path}: entry {index} ({entry.get('method') if isinstance(entry, dict) else entry!r})"


def _message(path: Path, entries: Any, error: jsonschema.ValidationError) -> str:
    """One line for a schema violation: the file, the entry (index and method) and the key."""
    if not error.absolute_path:  # the document itself: the schema asks only for a list
        return f"{path}: expected a list of entries, got {type(entries).__name__}"
    index, *keys = error.absolute_path
    where = _where(path, index, entries[index])
    if isinstance(error.schema, dict) and "errorMessage" in error.schema:
        return f"{where}: {error.schema['errorMessage']}"
    if not keys:  # the entry as a whole
        if error.validator == "type":
            return f"{where}: not a mapping"
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema["properties"])
            return f"{where}: unknown keys {sorted(set(error.instance) - set(allowed))}; allowed: {allowed}"
        if error.validator == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            return f"{where}: missing {missing[0]!r}"
        return f"{where}: {error.message}"
    key = str(keys[0]) + "".join(f"[{k}]" for k in keys[1:])
    if error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where}: {key} {error.instance!r} is not {' or '.join(_TYPE_NAMES[t] for t in types)}"
    return f"{where}: {key}: {error.message}"


def load_references(path: Path = REFERENCES) -> list[dict[str, Any]]:
    """The published numbers of ``report/reference_numbers.yaml``, checked (ValueError naming the entry and key)."""
    entries = yaml.safe_load(Path(path).read_text()) or []
    # the first violation in file order (errors come entry by entry, each in the schema's keyword order)
    errors = sorted(_validator().iter_errors(entries), key=lambda e: list(e.absolute_path)[:1])
    if errors:
        raise ValueError(_message(path, entries, errors[0]))
    for i, e in enumerate(entries):
        if "dataset" in e and e["dataset"] not in REAL_DATASETS:
            raise ValueError(
                f"{_where(path, i, e)}: dataset {e['dataset']!r} is not a real dataset; "
                f"allowed: {', '.join(REAL_DATASETS)}"
            )
    # the schema ties the two: cost metrics (params, gmacs, ...) have no dataset, quality metrics need one
    return [{**_DEFAULTS, **e, "cost": "dataset" not in e} for e in entries]
