"""Adding a method is one package plus one config line: a toy method dropped into methods/ of a scratch
checkout is trained, evaluated, profiled and shown in every table and in the report, with no other edit.

Its third variant breaks the method contract (a metric column it does not declare): that cell fails at
evaluation, and the workflow itself (Snakefile `onerror`) still renders the report, listing the failure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import yaml
from dag_config import REPO, scratch_checkout

TOY = '''
"""Toy: a per-channel gain (one 1x1 convolution), trained with L1. Exists only in this test."""

import torch
from torch import nn

from llbench.vocabulary import Metric
from methods import register
from methods.base import Method, Trainer, Variant


class ToyNet(nn.Conv2d):
    def __init__(self, bias=True, declared=True):
        super().__init__(3, 3, 1, bias=bias)
        self.declared = declared


class ToyTrainer(Trainer):
    def __init__(self, model, cfg, device):
        super().__init__(model, cfg, device)
        self.optimizers["net"] = torch.optim.Adam(model.parameters(), lr=cfg["lr"])

    def step(self, batch):
        x, y = batch["input"].to(self.device), batch["target"].to(self.device)
        loss = (self.model(x) - y).abs().mean()
        self.optimizers["net"].zero_grad()
        loss.backward()
        self.optimizers["net"].step()
        return {"l1": float(loss)}


@register
class Toy(Method):
    name = "toy"
    variants = {
        "default": Variant("a 1x1 convolution with bias"),
        "no_bias": Variant("the same without bias (the toy ablation)", build={"bias": False}),
        "undeclared": Variant("reports a metric column it does not declare", build={"declared": False}),
    }
    train_defaults = {"iterations": 2, "batch_size": 1, "crop": 32, "augment": (), "lr": 1e-2}
    extra_columns = {"psnr_toy": Metric("psnr_toy", "PSNR, toy protocol (dB)", True, 2, "the toy's own protocol")}
    paper = "Toy, a method of one test"

    def network(self, **kwargs):
        return ToyNet(**kwargs)

    def trainer(self, model, cfg, device):
        return ToyTrainer(model, cfg, device)

    def extra_metrics(self, model, x, target, output=None):
        return {"psnr_toy": 42.0} if model.declared else {"psnr_toy": 42.0, "psnr_other": 1.0}
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    repo = scratch_checkout(tmp_path_factory.mktemp("toy_repo"))
    (repo / "methods" / "toy").mkdir()
    (repo / "methods" / "toy" / "__init__.py").write_text(textwrap.dedent(TOY))
    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    cfg["datasets"] = {"tiny-lol": cfg["datasets"]["tiny-lol"]}
    cfg["experiments"] = [
        {"method": "input", "datasets": ["tiny-lol"]},
        {"method": "toy", "datasets": ["tiny-lol"], "variants": "all"},  # the one config line
    ]
    cfg["profile"] = {"sizes": [[64, 64]], "warmup": 0, "repeats": 1}
    (repo / "toy.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(repo)}  # the scratch checkout's packages, not the installed ones
    done = subprocess.run(
        [sys.executable, "-m", "llbench", "run", "--configfile", "toy.yaml", "--cores", "2", "--keep-going", "--quiet"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # the undeclared cell failed
    assert "rendering a partial report" in done.stderr
    return repo


def test_toy_method_is_in_every_table(run):
    tables = run / "results" / "tables"
    main = pd.read_csv(tables / "main.csv")
    toy = main[main["method"] == "toy"]
    assert list(toy["variant"]) == ["default", "no_bias", "undeclared"]
    assert list(toy["status"]) == ["ok", "ok", "failed"]
    ok = toy[toy["status"] == "ok"]
    assert ok["psnr"].notna().all() and (ok["psnr_toy"] == 42.0).all()
    assert list(main["method"])[0] == "input"  # the baseline first, then the config's order
    abl = pd.read_csv(tables / "ablations.csv")
    assert set(abl.loc[abl["method"] == "toy", "variant"]) == {"default", "no_bias", "undeclared"}
    prof = pd.read_csv(tables / "profile.csv")
    toy_params = prof.loc[prof["method"] == "toy"].groupby("variant")["params"].first().to_dict()
    assert toy_params == {"default": 12, "no_bias": 9, "undeclared": 12}  # 3x3 weights (+ 3 biases)
    logs = pd.read_csv(tables / "train_log.csv")
    assert "l1" in logs.columns and len(set(logs.loc[logs["method"] == "toy", "variant"])) == 3
    assert set(pd.read_csv(tables / "per_image.csv")["method"]) == {"input", "toy"}


def test_toy_method_is_in_the_report(run):
    html = (run / "results" / "report" / "index.html").read_text()
    for text in ("toy", "no_bias", "the same without bias (the toy ablation)", "PSNR, toy protocol (dB)"):
        assert text in html, text
    assert 'src="grids/tiny-lol/01-crop.png" alt="toy"' in html  # the grid rule's visual comparison
    # the broken cell: listed as failed, with the evaluation's error naming the undeclared column
    assert "logs/evaluate/tiny-lol/toy/undeclared/seed0.log" in html
    assert "toy.extra_metrics returned [&#39;psnr_other&#39;], not in its extra_columns" in html
