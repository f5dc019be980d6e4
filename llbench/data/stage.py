"""Make a configured dataset available to a run and record what it was (the ``dataset`` rule).

Tiny datasets are generated (deterministic); real ones are pulled with ``dvc pull <root>`` when their
root is missing (a path target: never a .dvc target mixed with paths, DVC bug #11075), then checked
against their ``MANIFEST.sha256``. The stamp records the manifest hash for every result's provenance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from llbench.data.manifest import MANIFEST, check_manifest, manifest_hash, read_manifest


def _dvc() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else (shutil.which("dvc") or "dvc")


def pull(root: Path) -> None:
    """``dvc pull <root>``: fetch exactly this dataset from the configured remote."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([_dvc(), "pull", str(root)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise FileNotFoundError(
            f"{root}: missing and `dvc pull {root}` failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ''}. "
            "Prepare it with `llbench data prepare` (docs/datasets.md) or configure the DVC remote."
        )


def stage(spec: dict[str, Any]) -> dict[str, Any]:
    """Ensure the dataset described by ``spec`` (a config entry plus ``name``) is present and intact."""
    root = Path(spec["root"])
    if "tiny" in spec:
        from llbench.data.tiny import make_tiny

        if not (root / MANIFEST).is_file() or not check_manifest(root).ok:
            make_tiny(spec["tiny"], root)
        source = f"tiny generator '{spec['tiny']}' (llbench.data.tiny)"
    else:
        if not root.exists():
            pull(root)
        source = "dvc (data.dvc)"
    report = check_manifest(root)
    if not report.ok:
        problems = [
            f"{k}: {', '.join(v[:5])}"
            for k, v in (("missing", report.missing), ("extra", report.extra), ("corrupt", report.corrupt))
            if v
        ]
        raise ValueError(
            f"{root}: does not match its {MANIFEST} ({'; '.join(problems)}); "
            f"run `llbench data check {root}` for the full list"
        )
    return {
        "name": spec["name"],
        "kind": spec["kind"],
        "root": str(root),
        "source": source,
        "manifest_sha256": manifest_hash(root),
        "files": len(read_manifest(root)),
    }


def write_stamp(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
