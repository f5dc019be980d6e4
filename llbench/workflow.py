"""Config validation and the benchmark matrix: which cells exist and what each job needs.

Snakemake's ``workflow/rules/common.smk`` is a thin layer over this module, so the matrix logic is
plain, testable Python. A cell is one ``results/<dataset>/<method>/<variant>/<run>/`` directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llbench import layout

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key, the value and what is allowed."""


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _where(path) -> str:
    out = "config"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _fill_defaults(node: Any, schema: dict) -> Any:
    """Insert the schema's ``default`` values (as snakemake.utils.validate does) into a copy of ``node``."""
    if isinstance(node, dict) and schema.get("type") == "object":
        node = dict(node)
        for key, sub in schema.get("properties", {}).items():
            if key not in node and "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
            if key in node:
                node[key] = _fill_defaults(node[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in node:
                if key not in schema.get("properties", {}):
                    node[key] = _fill_defaults(node[key], extra)
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        node = [_fill_defaults(v, schema["items"]) for v in node]
    return node


def check_schema(config: dict) -> None:
    """Raise one :class:`ConfigError` line for the first schema violation (key, value, allowed values)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if not errors:
        return
    e = errors[0]
    where = _where(e.absolute_path)
    if e.validator == "enum":
        raise ConfigError(f"{where} = {e.instance!r} is not allowed; allowed: {', '.join(map(str, e.validator_value))}")
    if e.validator == "additionalProperties":
        allowed = ", ".join(sorted(e.schema.get("properties", {})))
        raise ConfigError(f"{where}: {e.message}; allowed keys: {allowed}")
    raise ConfigError(f"{where} = {json.dumps(e.instance)[:80]}: {e.message}")


def validate(config: dict) -> dict:
    """Check ``config`` against the schema and the registry; returns it with defaults filled in and every
    cell's identity resolved: ``variants: all`` expanded from the registry, the ``default`` alias replaced
    by the method's default variant, ``train:``/``infer:`` keys checked against what the method accepts."""
    import methods

    check_schema(config)
    cfg = _fill_defaults(config, _schema())
    datasets = cfg["datasets"]
    recipes = sorted({r for name in methods.names() for r in methods.get(name).recipes})
    for name, ds in datasets.items():
        if "train_on" in ds:
            other = ds["train_on"]
            if other not in datasets:
                raise ConfigError(
                    f"config.datasets.{name}.train_on = {other!r} is not a dataset; allowed: {', '.join(datasets)}"
                )
            if "train" not in datasets[other]:
                raise ConfigError(f"config.datasets.{name}.train_on = {other!r} has no train split")
        if "recipe" in ds and ds["recipe"] not in recipes:
            raise ConfigError(
                f"config.datasets.{name}.recipe = {ds['recipe']!r} is no method's official recipe; "
                f"allowed: {', '.join(recipes)}"
            )

    def check_method(where: str, entry: dict, variant_key: str, trained: bool) -> None:
        try:
            method = methods.get(entry["method"])
        except KeyError as e:
            raise ConfigError(f"{where}.method: {e.args[0]}") from None
        given = entry[variant_key]
        if given == "all":
            given = list(method.variants)
        resolved = []
        for v in [given] if isinstance(given, str) else given:
            try:
                resolved.append(method.variant_name(v))
            except KeyError as e:
                raise ConfigError(f"{where}.{variant_key}: {e.args[0]}") from None
        entry[variant_key] = resolved[0] if variant_key == "variant" else list(dict.fromkeys(resolved))
        for d in entry["datasets"]:
            if d not in datasets:
                raise ConfigError(f"{where}.datasets: unknown dataset {d!r}; allowed: {', '.join(datasets)}")
            kind = datasets[d]["kind"]
            if kind not in method.dataset_kinds:
                raise ConfigError(
                    f"{where}.datasets: {method.name} cannot be evaluated on {d!r} (kind {kind}); "
                    f"allowed kinds: {', '.join(method.dataset_kinds)}"
                )
            if trained and method.trained and "train" not in datasets[d] and "train_on" not in datasets[d]:
                raise ConfigError(
                    f"{where}.datasets: {d!r} has no train split and no train_on; {method.name} needs training"
                )
        allowed = {"train": method.train_keys() if method.trained else [], "infer": sorted(method.infer_defaults)}
        for section, keys in allowed.items():
            for key in entry.get(section, {}):
                if key not in keys:
                    raise ConfigError(
                        f"{where}.{section}.{key}: not an option of {method.name}; allowed: {', '.join(keys) or 'none'}"
                    )

    for i, exp in enumerate(cfg["experiments"]):
        check_method(f"config.experiments[{i}]", exp, "variants", trained=True)
    for key, pre in cfg["pretrained"].items():
        check_method(f"config.pretrained.{key}", pre, "variant", trained=False)
    return cfg


def read_yaml(path: Path | str) -> dict:
    """One config file as a dict; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        raise ConfigError(f"{path}{at}: YAML syntax error: {problem}" + (f" ({context})" if context else "")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    return data


def merge(paths: list[Path | str]) -> dict:
    """Config files merged in order, later ones overlaying earlier ones, as Snakemake merges ``--configfile``
    (nested mappings merge key by key; lists and values are replaced)."""
    from snakemake.utils import update_config

    config: dict = {}
    for path in paths:
        update_config(config, read_yaml(path))
    return config


def load(paths: Path | str | list[Path | str]) -> dict:
    """Read, merge (several files: later ones overlay earlier ones) and validate YAML config files."""
    return validate(merge([paths] if isinstance(paths, (str, Path)) else list(paths)))


@dataclass(frozen=True)
class Cell:
    """One table cell: a method variant evaluated on one dataset by one run."""

    dataset: str
    method: str
    variant: str
    run: str  # seed<N> or pretrained-<name>
    seed: int = 0
    train_dataset: str | None = None  # where the checkpoint is trained (None: no training)
    train: dict = field(default_factory=dict, hash=False, compare=False)
    infer: dict = field(default_factory=dict, hash=False, compare=False)
    checkpoint: str | None = None  # external checkpoint (pretrained cells)
    checkpoint_sha256: str | None = None  # its expected sha256 (config pretrained.<name>.sha256), checked
    kind: str = ""  # the dataset's kind (llbench.vocabulary.KINDS)
    tiny: bool = False  # the dataset is generated smoke-test data (config key `tiny`)

    @property
    def dir(self) -> str:
        return layout.cell_dir(self.dataset, self.method, self.variant, self.run)

    @property
    def train_dir(self) -> str | None:
        """The cell folder of the training run whose checkpoint this cell evaluates (None: no training here)."""
        if self.train_dataset is None:
            return None
        return layout.cell_dir(self.train_dataset, self.method, self.variant, self.run)

    def record(self) -> dict:
        """What the tables know of a cell before it runs (a missing or failed cell still gets a kind and a task)."""
        return {"path": self.dir, "kind": self.kind, "tiny": self.tiny, "train_dataset": self.train_dataset}

    @property
    def checkpoint_path(self) -> str | None:
        """The checkpoint evaluated: the external one, the training run's, or None (a baseline)."""
        if self.checkpoint is not None:
            return self.checkpoint
        return layout.checkpoint(self.train_dataset, self.method, self.variant, self.run) if self.train_dir else None


def cells(cfg: dict) -> list[Cell]:
    """Every cell of the matrix, in config order (experiments, then pretrained checkpoints)."""
    import methods

    out: list[Cell] = []
    for exp in cfg["experiments"]:
        method = methods.get(exp["method"])
        for d in exp["datasets"]:
            ds = cfg["datasets"][d]
            train_ds = ds.get("train_on", d) if method.trained else None
            for v in exp["variants"]:
                for s in exp["seeds"]:
                    out.append(
                        Cell(
                            d,
                            exp["method"],
                            v,
                            f"seed{s}",
                            s,
                            train_ds,
                            dict(exp["train"]),
                            dict(exp["infer"]),
                            kind=ds["kind"],
                            tiny="tiny" in ds,
                        )
                    )
    for key, pre in cfg["pretrained"].items():
        for d in pre["datasets"]:
            out.append(
                Cell(
                    d,
                    pre["method"],
                    pre["variant"],
                    f"pretrained-{key}",
                    0,
                    None,
                    {},
                    dict(pre["infer"]),
                    pre["checkpoint"],
                    pre.get("sha256"),
                    kind=cfg["datasets"][d]["kind"],
                    tiny="tiny" in cfg["datasets"][d],
                )
            )
    return out


def find_cell(cfg: dict, dataset: str, method: str, variant: str, run: str) -> Cell:
    for c in cells(cfg):
        if (c.dataset, c.method, c.variant, c.run) == (dataset, method, variant, run):
            return c
    raise KeyError(f"no cell {dataset}/{method}/{variant}/{run} in this config")


def spec_hash(spec: dict) -> str:
    """sha256 of the canonical JSON of a job spec: the 'config hash' recorded with every result."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def runtime(cfg: dict) -> dict:
    """Settings every job shares."""
    return {k: cfg[k] for k in ("device", "gpus", "threads", "workers", "deterministic")}


def train_spec(cfg: dict, cell: Cell) -> dict:
    """Everything a training job needs (the checkpoint does not depend on the evaluation dataset)."""
    ds = cfg["datasets"][cell.train_dataset]
    return {
        "method": cell.method,
        "variant": cell.variant,
        "seed": cell.seed,
        "dataset": {"name": cell.train_dataset, **ds},
        "train": cell.train,
        "runtime": runtime(cfg),
    }


def eval_spec(cfg: dict, cell: Cell) -> dict:
    return {
        "method": cell.method,
        "variant": cell.variant,
        "run": cell.run,
        "seed": cell.seed,
        "dataset": {"name": cell.dataset, **cfg["datasets"][cell.dataset]},
        "train_dataset": cell.train_dataset,
        "infer": cell.infer,
        "checkpoint": cell.checkpoint,
        **({"checkpoint_sha256": cell.checkpoint_sha256} if cell.checkpoint_sha256 else {}),
        "runtime": runtime(cfg),
    }


def profile_sizes(cfg: dict, method: str) -> list[list[int]]:
    """Fixed profiling sizes plus the native size of every dataset the method is evaluated on."""
    sizes = [list(s) for s in cfg["profile"]["sizes"]]
    for c in cells(cfg):
        if c.method == method:
            native = cfg["datasets"][c.dataset].get("native_size")
            if native and list(native) not in sizes:
                sizes.append(list(native))
    return sizes


def profile_spec(cfg: dict, method: str, variant: str) -> dict:
    """Profile of a method variant, with the inference options its experiment sets (first cell wins)."""
    infer = next((c.infer for c in cells(cfg) if (c.method, c.variant) == (method, variant)), {})
    return {
        "method": method,
        "variant": variant,
        "infer": infer,
        "sizes": profile_sizes(cfg, method),
        "warmup": cfg["profile"]["warmup"],
        "repeats": cfg["profile"]["repeats"],
        "runtime": runtime(cfg),
    }


def grid_cells(cfg: dict, dataset: str) -> list[Cell]:
    """The cells a dataset's visual comparison shows: per method and source (trained or each pretrained
    checkpoint) its default variant's first run, baselines first, then the config's order."""
    import methods

    picked: dict[tuple[str, str], Cell] = {}
    for c in cells(cfg):
        method = methods.get(c.method)
        source = c.run if c.checkpoint else "trained"
        if c.dataset == dataset and c.variant == method.default_variant:
            picked.setdefault((c.method, source), c)
    return sorted(picked.values(), key=lambda c: methods.get(c.method).trained)
