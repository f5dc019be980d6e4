"""``MANIFEST.sha256``: one ``<sha256>  <relative path>`` line per file (``sha256sum -c`` compatible)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def _manifest_file(root: Path) -> Path:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no manifest (`llbench data manifest {root}` for a folder of your own, "
            "`llbench data prepare` for an official download, `llbench data tiny` for a tiny set)"
        )
    return path


def parse_manifest(path: Path) -> dict[str, str]:
    """relative path -> sha256 from a manifest file (``sha256sum`` format)."""
    entries = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{path}:{n}: expected '<sha256>  <path>', got {line!r}")
        entries[rel] = digest
    return entries


def read_manifest(root: Path) -> dict[str, str]:
    """relative path -> sha256 from ``root/MANIFEST.sha256``."""
    return parse_manifest(_manifest_file(root))


def manifest_hash(root: Path) -> str:
    """sha256 of the manifest file itself: one identifier for the dataset's exact content."""
    return sha256_file(_manifest_file(root))


def check_sha256(path: Path, expected: str | None, source: str) -> str:
    """sha256 of ``path``; a mismatch with ``expected`` (when given; ``source`` says who expects it) is refused."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: not found")
    digest = sha256_file(path)
    if expected is not None and digest != expected.lower():
        raise ValueError(f"{path}: sha256 is {digest}, but {source} expects {expected.lower()}; refused")
    return digest


def listing(names: list[str], limit: int = 10) -> str:
    """``a, b, c (+N more)``: a file list short enough for one error line."""
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@dataclass
class CheckReport:
    """Result of :func:`check_manifest` / :func:`diff_manifests`: which files are missing, extra or corrupt (differ)."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.corrupt)


def diff_manifests(expected: dict[str, str], actual: dict[str, str]) -> CheckReport:
    """Two manifests' entries: files only in ``expected`` (missing), only in ``actual`` (extra), or whose
    digests differ (corrupt)."""
    return CheckReport(
        missing=sorted(set(expected) - set(actual)),
        extra=sorted(set(actual) - set(expected)),
        corrupt=sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k]),
    )


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


@contextmanager
def writing_dataset(root: Path | str) -> Iterator[Path]:
    """A staging folder beside ``root`` to write a dataset into: when the block ends it gets its
    :data:`MANIFEST` and replaces ``root`` (an existing ``root`` is moved aside, then deleted); when the
    block raises (or is killed by a signal Python sees) it is removed and ``root`` is left as it was."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        yield staging
        write_manifest(staging)
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the dataset from other users
        old = None
        if root.exists() or root.is_symlink():
            if root.is_dir() and not root.is_symlink() and not any(root.iterdir()):
                root.rmdir()
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                os.replace(root, old / root.name)
        os.replace(staging, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
