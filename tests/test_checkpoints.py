"""Checkpoint files a user brings: the common wrappers are unwrapped for every method, anything else is
refused with the file's name and the keys found; ``llbench infer`` output errors are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_alen import official_state as alen_official_state

import methods
from llbench.evaluate import load_weights

TRAINED = [n for n in methods.names() if methods.get(n).train_data != "none"]


def official_layout_state(name: str) -> dict[str, torch.Tensor]:
    """A state dict in the method's official key layout (ALEN's keys differ from ours; the rest share them)."""
    if name == "alen":
        return alen_official_state(isl=True)
    torch.manual_seed(0)
    return methods.build(name).state_dict()


@pytest.mark.parametrize("name", TRAINED)
@pytest.mark.parametrize("wrapper", ["state_dict", "model", "params", None])
def test_common_wrappers_and_module_prefix_are_unwrapped(tmp_path, name, wrapper):
    state = {f"module.{k}": v for k, v in official_layout_state(name).items()}  # DataParallel's prefix
    path = tmp_path / "ckpt.pth"
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 3}, path)
    method = methods.get(name)
    model = method.build()
    assert load_weights(method, model, path)["format"] == "official"
    expected = method.build()
    expected.load_state_dict(method.convert_official({k[7:]: v for k, v in state.items()}))
    for k, v in expected.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


@pytest.mark.parametrize("name", TRAINED)
def test_unknown_layout_is_refused_with_the_file_and_keys(tmp_path, name):
    path = tmp_path / "foreign.pth"
    torch.save({"weights": {"conv.weight": torch.zeros(1)}, "epoch": 1}, path)
    method = methods.get(name)
    with pytest.raises(
        ValueError, match=rf"{path}: not a {name} checkpoint.*top-level keys found: \['epoch', 'weights'\]"
    ):
        load_weights(method, method.build(), path)


def test_infer_output_errors_are_one_line(tmp_path, tiny):
    ckpt = tmp_path / "sci.pt"
    torch.save(methods.build("sci", "stage3").state_dict(), ckpt)
    image = str(tiny("lol") / "test" / "low" / "001.png")
    a_file = tmp_path / "taken.png"
    a_file.write_bytes(b"")
    for out, message in ((a_file, "exists and is not a folder"), (a_file / "sub", "cannot create the output folder")):
        cmd = [sys.executable, "-m", "llbench", "infer", "sci", image, "--variant", "stage3"]
        done = subprocess.run([*cmd, "--checkpoint", str(ckpt), "-o", str(out)], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"llbench infer: error: {out}: {message}"), lines
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "llbench",
            "infer",
            "sci",
            image,
            "--variant",
            "stage3",
            "--checkpoint",
            str(ckpt),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and Path(ok.stdout.strip()).is_file(), ok.stderr
