"""results/tables/*.csv from a hand-made results tree: statuses, seed aggregation, ablation deltas, order.

The tree (built by :func:`build_results`, shared with test_report.py) has hand-checkable numbers: per-image
PSNRs of each cell are small integer lists, so means, seed std and deltas are exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from llbench import tables

REPO = Path(__file__).resolve().parents[1]
SIZE = (48, 64)  # H, W of every fake image
IDS = ["000", "001", "002"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _img(seed: int, dark: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    base = np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1) % 256
    return np.clip((base + rng.integers(0, 20, base.shape)) * dark, 0, 255).astype(np.uint8)


def write_dataset(root: Path, rel: str, kind: str = "paired") -> str:
    """A tiny on-disk test split (``test/low|noisy`` + ``test/high|clean``) for the visual comparison."""
    low, high = {"paired": ("low", "high"), "denoise": ("noisy", "clean"), "unpaired": ("low", None)}[kind]
    for i, k in enumerate(IDS):
        (root / rel / "test" / low).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_img(i, 0.25)).save(root / rel / "test" / low / f"{k}.png")
        if high:
            (root / rel / "test" / high).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_img(i)).save(root / rel / "test" / high / f"{k}.png")
    return rel


def write_cell(
    root: Path,
    dataset: str,
    method: str,
    variant: str,
    run: str = "seed0",
    *,
    metrics: dict[str, list[float] | None],
    kind: str = "paired",
    data_root: str | None = None,
    flags: dict | None = None,
    train_dataset: str | None = None,
    train_log: bool = False,
) -> Path:
    """One cell folder as ``llbench evaluate`` writes it (metrics.json, per_image.csv, outputs/)."""
    d = root / "results" / dataset / method / variant / run
    (d / "outputs").mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, vals in metrics.items():
        if vals is None:
            summary[name] = {"mean": None, "ci95": None, "n": 0}
        else:
            summary[name] = {"mean": float(np.mean(vals)), "ci95": [float(min(vals)), float(max(vals))], "n": len(vals)}
    seed = int(run.removeprefix("seed")) if run.startswith("seed") else 0
    spec_ds = {
        "name": dataset,
        "kind": kind,
        "root": data_root or f"resources/{dataset}",
        "test": "test",
        "native_size": list(SIZE),
        **({"tiny": dataset.removeprefix("tiny-")} if dataset.startswith("tiny-") else {}),  # as the smoke config
    }
    m = {
        "cell": {"dataset": dataset, "method": method, "variant": variant, "run": run, "train_dataset": train_dataset},
        "metrics": summary,
        "not_applicable": [k for k, v in summary.items() if v["n"] == 0],
        "images": len(IDS),
        "protocol": {"secondary": sorted(k for k in metrics if k not in ("psnr", "ssim", "niqe"))},
        "checkpoint": {"path": None, "format": "none"},
        "inference": {},
        "seconds_per_image": 0.01,
        "flags": flags or {},
        "provenance": {
            "git": {"commit": COMMIT, "dirty": False},
            "config_sha256": f"cfg{abs(hash(d.as_posix())):x}",
            "spec": {"dataset": spec_ds, "seed": seed},
            "seed": seed,
            "data": {
                "name": dataset,
                "kind": kind,
                "root": spec_ds["root"],
                "manifest_sha256": "d" * 64,
                "source": "test fixture",
            },
            "packages": {"torch": "2.14.1", "python": "3.11.7"},
            "device": {"type": "cpu", "lease": "cpu"},
            "flags": flags or {},
        },
    }
    (d / "metrics.json").write_text(json.dumps(m))
    rows = [
        {
            "id": k,
            "height": SIZE[0],
            "width": SIZE[1],
            **{n: (v[i] if v is not None else None) for n, v in metrics.items()},
        }
        for i, k in enumerate(IDS)
    ]
    pd.DataFrame(rows).to_csv(d / "per_image.csv", index=False)
    for i, k in enumerate(IDS):
        Image.fromarray(_img(i + 10 * len(method), 0.6)).save(d / "outputs" / f"{k}.png")
    if train_log:
        it = np.arange(1, 21)
        pd.DataFrame(
            {"iteration": it, "epoch": it // 7, "loss": 10 / it + seed, "lr": 3e-4, "data_s": 0.01, "step_s": 0.1}
        ).to_csv(d / "train_log.csv", index=False)
        (d / "checkpoint.pt").write_bytes(b"fake")
    return d


def write_profile(root: Path, method: str, variant: str, params: int, flops: float, latency: float) -> None:
    sizes = []
    for (h, w), scale in (((256, 256), 1.0), (SIZE, SIZE[0] * SIZE[1] / 256**2)):
        sizes.append(
            {
                "size": [h, w],
                "params": params,
                "flops": flops * scale,
                "macs": flops * scale / 2,
                "macs_gib": flops * scale / 2 / 2**30,
                "latency_ms": latency * scale,
                "latency_p10_ms": latency * 0.9,
                "latency_p90_ms": latency * 1.1,
                "peak_mem_mb": 2.25,
                "peak_mem_kind": "cpu_live_tensor_peak",
                "device": "cpu",
                "device_name": "test CPU",
            }
        )
    p = root / "results" / "profile" / method / f"{variant}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"method": method, "variant": variant, "sizes": sizes, "provenance": {}}))


def write_log(root: Path, stage: str, cell: str, text: str) -> None:
    p = root / "logs" / stage / f"{cell}.log"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


XSS = "<script>window.pwned=1</script>"


def build_results(root: Path) -> list[dict]:
    """The shared fixture tree; returns the cells the (imaginary) config expects (Cell.record)."""
    lol = write_dataset(root, "resources/tiny/lol")
    sidd = write_dataset(root, "resources/tiny/sidd", "denoise")
    niqe_na = None  # NIQE undefined on these small images: never 0
    write_cell(
        root,
        "tiny-lol",
        "input",
        "default",
        data_root=lol,
        metrics={"psnr": [8, 9, 10], "ssim": [0.2, 0.3, 0.4], "niqe": niqe_na},
    )
    for run, base in (("seed0", 10), ("seed1", 11)):
        write_cell(
            root,
            "tiny-lol",
            "sci",
            "stage3",
            run,
            data_root=lol,
            train_dataset="tiny-lol",
            train_log=True,
            metrics={
                "psnr": [base, base + 1, base + 2],
                "ssim": [0.5, 0.6, 0.7],
                "niqe": niqe_na,
                "psnr_gtmean": [20, 21, 22],
            },
        )
    write_cell(
        root,
        "tiny-lol",
        "sci",
        "stage1",
        data_root=lol,
        train_dataset="tiny-lol",
        train_log=True,
        metrics={"psnr": [9, 10, 11], "ssim": [0.4, 0.5, 0.6], "niqe": niqe_na, "psnr_gtmean": [19, 20, 21]},
    )
    write_cell(
        root,
        "tiny-lol",
        "enlightengan",
        "default",
        data_root=lol,
        train_dataset="tiny-lol",
        flags={"untrained_vgg": True},
        metrics={"psnr": [12, 13, 14], "ssim": [0.3, 0.4, 0.5], "niqe": niqe_na},
    )
    # stage2 failed at evaluation (its log holds markup that must be escaped); no_calibration never ran
    write_log(root, "evaluate", "tiny-lol/sci/stage2/seed0", f"Traceback (most recent call last):\nValueError: {XSS}\n")
    # the same method's training failed on tiny-lsrw: no checkpoint, no evaluation
    write_log(root, "train", "tiny-lsrw/sci/stage3/seed0", "RuntimeError: out of memory\n")
    write_cell(
        root,
        "tiny-sidd",
        "input",
        "default",
        kind="denoise",
        data_root=sidd,
        metrics={"psnr": [27, 28, 29], "ssim": [0.6, 0.7, 0.8], "niqe": niqe_na},
    )
    write_cell(
        root,
        "tiny-sidd",
        "lgbpn",
        "default",
        kind="denoise",
        data_root=sidd,
        train_dataset="tiny-sidd",
        metrics={"psnr": [30, 31, 32], "ssim": [0.8, 0.8, 0.8], "niqe": niqe_na, "psnr_skimage": [30, 31, 32]},
    )
    # real LOL: the input baseline (published 7.77 dB) and SNR-Aware with its paper protocol column
    write_cell(
        root, "lol", "input", "default", metrics={"psnr": [7.7, 7.8, 7.819], "ssim": [0.19] * 3, "niqe": [8.0] * 3}
    )
    write_cell(
        root,
        "lol",
        "snr_aware",
        "default",
        train_dataset="lol",
        metrics={"psnr": [22.0, 22.61, 23.22], "ssim": [0.8] * 3, "niqe": [4.0] * 3, "psnr_paper": [23.61] * 3},
    )
    write_profile(root, "input", "default", 0, 0.0, 0.05)
    write_profile(root, "sci", "stage3", 258, 31850496, 2.0)
    write_profile(root, "sci", "stage1", 258, 31850496, 1.5)
    write_profile(root, "enlightengan", "default", 8636675, 3.29e10, 180.0)
    write_profile(root, "lgbpn", "default", 6162719, 6.5e11, 4000.0)
    paths = [f"results/tiny-lol/sci/{v}/seed0" for v in ("stage1", "stage2", "stage3", "no_calibration")] + [
        "results/tiny-lol/sci/stage3/seed1",
        "results/tiny-lsrw/sci/stage3/seed0",
        "results/tiny-lol/input/default/seed0",
    ]
    return [
        {"path": p, "kind": "paired", "tiny": True, "train_dataset": None if "/input/" in p else p.split("/")[1]}
        for p in paths
    ]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    expected = build_results(root)
    paths = tables.write_tables(root / "results", root / "results" / "tables", cells=expected)
    return root, {k: tables.read_table(root / "results" / "tables", k) for k in paths if k != "records"}


def _row(df: pd.DataFrame, **kw) -> pd.Series:
    sel = df
    for k, v in kw.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, (kw, len(sel))
    return sel.iloc[0]


def test_write_tables_writes_every_table(tree):
    root, t = tree
    assert set(t) == {"main", "ablations", "profile", "per_image", "cells", "train_log"}
    for name in t:
        assert (root / "results" / "tables" / f"{name}.csv").is_file()
    # 9 evaluated cells + 1 failed evaluation + 1 failed training + 1 missing
    assert len(t["cells"]) == 12
    assert t["cells"]["status"].value_counts().to_dict() == {"ok": 9, "failed": 2, "missing": 1}
    assert len(t["per_image"]) == 9 * 3
    assert len(t["train_log"]) == 3 * 20  # three trained cells with a train_log.csv


def test_cell_records_keep_provenance_typed(tree):
    root, t = tree
    records = tables.read_records(root / "results" / "tables")
    assert list(records["path"]) == list(t["cells"]["path"])  # the same cells, the same order
    egan = records[records["method"] == "enlightengan"].iloc[0]
    assert egan["flags"] == {"untrained_vgg": True} and records["untrained_vgg"].dtype == bool
    assert isinstance(egan["packages"], dict) and isinstance(egan["device_info"], dict)
    assert set(records["tiny"][records["dataset"].str.startswith("tiny-")]) == {True}
    assert records[records["dataset"] == "lol"]["tiny"].tolist() == [False, False]
    sidd = records[records["method"] == "lgbpn"].iloc[0]
    assert sidd["secondary"] == ["psnr_skimage"] and sidd["not_applicable"] == ["niqe"]
    assert not set(tables.NESTED) & set(t["cells"].columns)  # cells.csv is flat: no JSON inside CSV
    assert t["main"]["tiny"].dtype == bool  # booleans read back as booleans


def test_failed_and_missing_cells_name_their_logs(tree):
    _, t = tree
    c = t["cells"]
    failed = _row(c, dataset="tiny-lol", variant="stage2")
    assert failed["status"] == "failed" and failed["stage"] == "evaluate"
    assert failed["eval_log"] == "logs/evaluate/tiny-lol/sci/stage2/seed0.log"
    assert "ValueError: <script>" in failed["error"]  # raw in the CSV; the report escapes it
    train = _row(c, dataset="tiny-lsrw")
    assert (train["status"], train["stage"]) == ("failed", "train")
    assert train["train_log"] == "logs/train/tiny-lsrw/sci/stage3/seed0.log"
    missing = _row(c, variant="no_calibration")
    assert missing["status"] == "missing"
    assert missing["eval_log"] == "logs/evaluate/tiny-lol/sci/no_calibration/seed0.log"
    assert missing["target"] == "results/tiny-lol/sci/no_calibration/seed0/metrics.json"


def test_failures_are_found_without_the_config(tmp_path):
    build_results(tmp_path)
    cells = tables.read_cells(tmp_path / "results")  # no expected list: logs alone reveal the failures
    assert set(cells["status"]) == {"ok", "failed"}
    assert set(cells.loc[cells["status"] == "failed", "path"]) == {
        "results/tiny-lol/sci/stage2/seed0",
        "results/tiny-lsrw/sci/stage3/seed0",
    }


def test_seeds_are_aggregated_mean_std(tree):
    _, t = tree
    sci = _row(t["main"], dataset="tiny-lol", variant="stage3")
    assert sci["runs"] == 2 and sci["expected_runs"] == 2 and sci["status"] == "ok"
    assert sci["psnr"] == pytest.approx(11.5)  # seed means 11 and 12
    assert sci["psnr_std"] == pytest.approx(math.sqrt(0.5))
    assert math.isnan(sci["psnr_ci_low"])  # several seeds: the report lists each seed's interval
    one = _row(t["main"], dataset="tiny-lol", variant="stage1")
    assert (one["psnr"], one["psnr_ci_low"], one["psnr_ci_high"]) == (10.0, 9.0, 11.0)
    assert math.isnan(one["psnr_std"])


def test_not_applicable_is_nan_never_zero(tree):
    _, t = tree
    main = t["main"]
    tiny = main[main["dataset"].str.startswith("tiny-") & (main["status"] == "ok")]
    assert tiny["niqe"].isna().all()
    assert _row(main, dataset="lol", method="snr_aware")["niqe"] == 4.0
    assert math.isnan(_row(main, dataset="tiny-lol", method="input")["psnr_gtmean"])  # not computed there


def test_sources_and_flags(tree):
    _, t = tree
    main = t["main"]
    assert set(main.loc[main["method"] == "input", "source"]) == {"baseline"}  # never "trained"
    assert set(main.loc[main["method"] == "sci", "source"]) == {"trained"}
    assert bool(_row(main, method="enlightengan")["untrained_vgg"]) is True
    assert not main.loc[main["method"] != "enlightengan", "untrained_vgg"].astype(bool).any()


def test_order_input_first_then_config_order_then_default_variant(tree):
    _, t = tree
    main = t["main"]
    lol = main[main["dataset"] == "tiny-lol"]
    assert list(zip(lol["method"], lol["variant"], strict=True)) == [
        ("input", "default"),
        ("sci", "stage3"),
        ("sci", "stage1"),
        ("sci", "stage2"),
        ("sci", "no_calibration"),
        ("enlightengan", "default"),
    ]
    assert list(main["dataset"].drop_duplicates())[:2] == ["tiny-lol", "tiny-lsrw"]  # the config's order first


def test_ablation_deltas_to_the_default_variant(tree):
    _, t = tree
    abl = t["ablations"]
    assert set(abl["method"]) == {"sci"}  # every other method has one variant here
    lol = abl[abl["dataset"] == "tiny-lol"].set_index("variant")
    assert list(lol.index) == ["stage3", "stage1", "stage2", "no_calibration"]
    assert lol.loc["stage3", "psnr_delta"] == 0 and bool(lol.loc["stage3", "is_default"])
    assert lol.loc["stage1", "psnr_delta"] == pytest.approx(10 - 11.5)
    assert lol.loc["stage1", "ssim_delta"] == pytest.approx(0.5 - 0.6)
    assert lol.loc["stage1", "psnr_gtmean_delta"] == pytest.approx(20 - 21)
    assert math.isnan(lol.loc["stage2", "psnr_delta"]) and lol.loc["stage2", "status"] == "failed"
    assert lol.loc["stage1", "doc"] == "1 training stage (no calibrated re-entry)"
    lsrw = abl[abl["dataset"] == "tiny-lsrw"]
    assert lsrw.empty  # one (failed) variant only


def test_profiles_table(tree):
    _, t = tree
    prof = t["profile"]
    sci = _row(prof, method="sci", variant="stage3", size="256x256")
    assert sci["params"] == 258 and sci["gflops"] == pytest.approx(0.031850496)
    assert set(prof["size"]) == {"256x256", "48x64"}


def test_empty_results_give_empty_tables(tmp_path):
    paths = tables.write_tables(tmp_path / "results", tmp_path / "results" / "tables")
    assert pd.read_csv(paths["main"]).empty
    expected = [{"path": "results/tiny-lol/sci/stage3/seed0", "kind": "paired", "tiny": True, "train_dataset": None}]
    cells = tables.read_cells(tmp_path / "results", expected)
    assert list(cells["status"]) == ["missing"]
    assert (cells["kind"][0], cells["tiny"][0]) == ("paired", True)  # the config's facts, though nothing ran


def test_expected_cells_from_the_smoke_config():
    cells = {c["path"]: c for c in tables.expected_cells(REPO / "config" / "smoke.yaml")}
    assert cells["results/tiny-lol/sci/stage3/seed0"] == {
        "path": "results/tiny-lol/sci/stage3/seed0",
        "kind": "paired",
        "tiny": True,
        "train_dataset": "tiny-lol",
    }
    assert cells["results/tiny-sidd/input/default/seed0"]["train_dataset"] is None
