"""``MANIFEST.sha256``: one ``<sha256>  <relative path>`` line per file (``sha256sum -c`` compatible)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "MANIFEST.sha256"
_SKIP_DIRS = {".cache"}  # derived files (e.g. rendered raw ground truth) are not part of a dataset


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dataset_files(root: Path) -> list[Path]:
    """Every file of the dataset under ``root`` (sorted, relative), the manifest and caches excluded."""
    root = Path(root)
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST and not _SKIP_DIRS.intersection(p.relative_to(root).parts)
    )


def write_manifest(root: Path) -> Path:
    """Hash every file under ``root`` into ``root/MANIFEST.sha256``; returns its path."""
    root = Path(root)
    lines = [f"{sha256_file(root / rel)}  {rel.as_posix()}\n" for rel in dataset_files(root)]
    out = root / MANIFEST
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(out)
    return out


def read_manifest(root: Path) -> dict[str, str]:
    """relative path -> sha256 from ``root/MANIFEST.sha256``."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (run `llbench data prepare` or `llbench data tiny`)")
    entries = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{path}:{n}: expected '<sha256>  <path>', got {line!r}")
        entries[rel] = digest
    return entries


def manifest_hash(root: Path) -> str:
    """sha256 of the manifest file itself: one identifier for the dataset's exact content."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (run `llbench data prepare` or `llbench data tiny`)")
    return sha256_file(path)


@dataclass
class CheckReport:
    """Result of :func:`check_manifest`: which files are missing, extra or corrupt."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.corrupt)


def check_manifest(root: Path) -> CheckReport:
    """Compare the files under ``root`` with its manifest."""
    root = Path(root)
    expected = read_manifest(root)
    present = {p.as_posix() for p in dataset_files(root)}
    report = CheckReport(
        missing=sorted(set(expected) - present),
        extra=sorted(present - set(expected)),
    )
    report.corrupt = sorted(rel for rel in set(expected) & present if sha256_file(root / rel) != expected[rel])
    return report
