"""The DVC workflow of docs/datasets.md, for real: prepare two datasets under data/, ``dvc add data``, push
to a local remote, serve that remote read-only over HTTP, clone, and pull ONE dataset by path (never a .dvc
target mixed with a path target: DVC bug #11075). Only that dataset arrives; its files match its manifest."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import warnings
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llbench.data.manifest import check_manifest, read_manifest
from llbench.data.prepare import prepare

_NEXT_TO_PYTHON = Path(sys.executable).parent / "dvc"
DVC = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else shutil.which("dvc")
pytestmark = pytest.mark.skipif(DVC is None, reason="dvc is not installed next to the interpreter")

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
GIT = [
    "git",
    "-c",
    "user.name=llbench-test",
    "-c",
    "user.email=test@example.invalid",
    "-c",
    "init.defaultBranch=main",
]


def _run(cmd: list[str], cwd: Path) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _paired_source(root: Path, top: str, sides: tuple[str, str], ids: tuple[str, ...]) -> Path:
    rng = np.random.default_rng(len(ids))
    for folder, split_ids in (
        (f"{top}/Train" if sides[0] == "Low" else f"{top}/our485", ids[:-1]),
        (f"{top}/Test" if sides[0] == "Low" else f"{top}/eval15", ids[-1:]),
    ):
        for i in split_ids:
            for side in sides:
                (root / folder / side).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(root / folder / side / f"{i}.png")
    return root


class _QuietHandler(SimpleHTTPRequestHandler):  # GET/HEAD only: a read-only remote
    served: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        type(self).served.append(self.path)
        super().do_GET()


def test_dvc_push_then_granular_pull_over_http(tmp_path):
    repo, remote, clone = tmp_path / "repo", tmp_path / "remote", tmp_path / "clone"
    repo.mkdir()
    _run([*GIT, "init", "-q"], repo)
    _run([DVC, "init", "-q"], repo)
    _run([DVC, "config", "core.analytics", "false"], repo)

    with warnings.catch_warnings():  # two tiny subsets of the real layouts
        warnings.simplefilter("ignore")
        lol = prepare(
            "lol",
            _paired_source(tmp_path / "dl1", "LOLdataset", ("low", "high"), ("1", "2", "3")),
            repo / "data" / "LOL",
            strict_counts=False,
        )
        syn = prepare(
            "lolv2-syn",
            _paired_source(tmp_path / "dl2", "Synthetic", ("Low", "Normal"), ("a", "b")),
            repo / "data" / "LOLv2-syn",
            strict_counts=False,
        )
    assert check_manifest(lol).ok and check_manifest(syn).ok

    _run([DVC, "add", "-q", "data"], repo)
    assert (repo / "data.dvc").is_file()
    _run([DVC, "remote", "add", "-d", "lab", str(remote)], repo)
    _run([*GIT, "add", "-A"], repo)
    _run([*GIT, "commit", "-q", "-m", "data"], repo)
    _run([DVC, "push", "-q"], repo)
    assert any(p.is_file() for p in remote.rglob("*"))

    handler = functools.partial(_QuietHandler, directory=str(remote))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _run([*GIT, "clone", "-q", str(repo), str(clone)], tmp_path)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        _run([DVC, "remote", "add", "--local", "-d", "web", url], clone)  # overrides the repo's default
        _run([DVC, "pull", "-q", "data/LOL"], clone)  # a path target only
    finally:
        server.shutdown()
        server.server_close()

    assert _QuietHandler.served, "nothing was fetched over HTTP"
    pulled = clone / "data" / "LOL"
    assert check_manifest(pulled).ok
    assert read_manifest(pulled) == read_manifest(lol)
    assert not (clone / "data" / "LOLv2-syn").exists()
