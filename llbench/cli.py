"""``llbench`` command line: the engine's entry points, called by the Snakemake rules and by users.

Heavy packages (torch, pyiqa, pandas, matplotlib) are imported inside the commands that use them:
every Snakemake job is a fresh process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 256x256), got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"--spec is not valid JSON: {e}") from None


def cmd_data(args: argparse.Namespace) -> int:
    from llbench.data import stage

    if args.data_cmd == "tiny":
        from llbench.data.tiny import GENERATORS, make_tiny

        if args.full_size:  # a full-size stand-in of a real dataset (benchmarks; large, never committed)
            from llbench.data.fullsize import make_full_size

            if args.name == "all":
                raise ValueError("--full-size makes one dataset at a time (each is gigabytes); name it")
            out = Path(args.out) if args.out else Path("resources/full") / args.name
            make_full_size(args.name, out, fraction=args.fraction, seed=0 if args.seed is None else args.seed)
            print(f"full-{args.name}: {out}")
            return 0
        if args.fraction is not None:
            raise ValueError("--fraction needs --full-size (tiny datasets have fixed counts)")
        names = list(GENERATORS) if args.name == "all" else [args.name]
        for name in names:
            if args.out is None:
                out = Path("resources/tiny") / name
            else:
                out = Path(args.out) / name if args.name == "all" else Path(args.out)
            make_tiny(name, out, seed=args.seed)
            print(f"tiny-{name}: {out}")
        return 0
    if args.data_cmd == "cache":
        from llbench.data import cache

        info = stage.verify(Path(args.stamp))
        ds = args.spec
        built = cache.build(Path(ds["root"]), ds["train"], ds["kind"], info["manifest_sha256"], Path(args.base))
        cache.write_pointer(Path(args.out), built)
        verb = "reused" if built["reused"] else f"built in {built['build_s']:.1f} s"
        print(f"{ds['name']}: training cache {built['folder']} ({built['bytes'] / 2**20:.0f} MiB, {verb})")
        return 0
    if args.data_cmd == "stage":
        info = stage.stage(args.spec)
        stage.write_stamp(Path(args.stamp), info)
        print(json.dumps(info, indent=1))
        return 0
    if args.data_cmd == "prepare":
        from llbench.data import prepare

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        out = prepare.prepare(
            args.name,
            [Path(s) for s in args.source],
            Path(args.to) if args.to else None,
            strict_counts=not args.no_count_check,
            overwrite=args.overwrite,
        )
        print(f"prepared {args.name}: {out}")
        return 0
    if args.data_cmd == "manifest":
        from llbench.data.manifest import (
            MANIFEST,
            diff_manifests,
            listing,
            manifest_hash,
            read_manifest,
            write_manifest,
        )

        root = Path(args.root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: folder not found")
        before = read_manifest(root) if (root / MANIFEST).is_file() else None
        write_manifest(root)
        after = read_manifest(root)
        print(f"{root / MANIFEST}: {len(after)} files, sha256 {manifest_hash(root)}")
        if before is not None:
            diff = diff_manifests(before, after)
            for label, names in (("modified", diff.corrupt), ("added", diff.extra), ("removed", diff.missing)):
                if names:
                    print(f"  {label}: {listing(names)}")
        return 0
    if args.data_cmd == "check":
        from llbench.data import prepare

        root = prepare.resolve_root(args.name)
        report = prepare.check(root)
        print(prepare.format_report(root, report, limit=args.limit))
        return 0 if report.ok else 1
    raise AssertionError(args.data_cmd)


def cmd_train(args: argparse.Namespace) -> int:
    from llbench.train import train

    train(
        args.spec,
        Path(args.out),
        stamp=Path(args.stamp) if args.stamp else None,
        cache=Path(args.cache) if args.cache else None,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from llbench.evaluate import evaluate

    evaluate(
        args.spec,
        Path(args.out),
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        stamp=Path(args.stamp) if args.stamp else None,
    )
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from llbench.evaluate import infer_files

    for path in infer_files(
        args.method,
        args.variant,
        Path(args.checkpoint),
        [Path(p) for p in args.inputs],
        Path(args.output),
        device=args.device,
    ):
        print(path)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from llbench import runtime
    from llbench.profiling import profile_method

    device, lease = runtime.setup({"device": args.device, "threads": torch.get_num_threads()})  # auto -> cuda|cpu
    try:
        results = [
            profile_method(args.method, args.variant, size=s, device=device, warmup=args.warmup, repeats=args.repeats)
            for s in (args.size or [(256, 256)])
        ]
    finally:
        lease.release()
    out = results[0] if len(results) == 1 else results
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for r in results:
            print(
                f"{r['method']}/{r['variant']} @ {r['size'][0]}x{r['size'][1]}: {r['params']:,} params, "
                f"{r['flops'] / 1e9:.4f} GFLOPs, {r['latency_ms']:.2f} ms on {r['device']}"
            )
    return 0


def cmd_profile_job(args: argparse.Namespace) -> int:
    from llbench.profiling import profile_job

    profile_job(args.spec, Path(args.output))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from llbench.tables import expected_cells, write_tables

    cells = args.cells if args.cells is not None else (expected_cells(args.configfile) if args.configfile else None)
    write_tables(Path(args.results), Path(args.out), cells=cells)
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from llbench.report.grid import make_grid

    print(make_grid(args.spec["dataset"], args.spec["cells"], Path(args.out)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from llbench.report import render

    print(render(Path(args.tables), Path(args.out), results=Path(args.results), configfile=args.configfile))
    return 0


def cmd_cell(args: argparse.Namespace) -> int:
    from llbench.runner import run_cell

    return run_cell(
        args.dataset,
        args.method,
        args.variant,
        args.run,
        configfiles=args.configfile,
        dry_run=args.dry_run,
        force=args.forcerun,
        extra=args.snakemake_args,
    )


def cmd_release(args: argparse.Namespace) -> int:
    from llbench.release import release

    out = release(args.configfile, Path(args.out), cells=args.cell, outputs=args.outputs, dvc=not args.no_dvc)
    print(f"released {out} ({out / 'RELEASE.json'})")
    if not args.no_dvc:
        print(f"next: git add {out}.dvc .gitignore && git commit -m 'release' && dvc push")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from llbench.release import verify

    return verify(
        args.cell,
        all_cells=args.all,
        release_dir=Path(args.release),
        overlays=args.configfile or [],
        retrain=args.retrain,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llbench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("data", help="datasets: tiny generators, staging, prepare and check")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    t = dsub.add_parser(
        "tiny",
        help="generate a tiny dataset (lol, lsrw, sidd, unpaired, sid, all), or with --full-size a full-size "
        "stand-in of a real one (lol, lolv2-real, lolv2-syn, lsrw, sidd, sid) for benchmarks",
    )
    t.add_argument("name")
    t.add_argument("--out", help="output folder (default resources/tiny/<name>; --full-size: resources/full/<name>)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument(
        "--full-size", action="store_true", help="the real dataset's image sizes and layout, scaled counts (large)"
    )
    t.add_argument(
        "--fraction", type=float, help="with --full-size: share of the real counts, 0 < F <= 1 (default per dataset)"
    )
    ca = dsub.add_parser("cache", help="the training-ready cache of a dataset's train split (the train_cache rule)")
    ca.add_argument("--spec", type=_json, required=True, help="dataset config as JSON (name, kind, root, train)")
    ca.add_argument("--stamp", required=True, help="the dataset's stamp (the data are checked against it)")
    ca.add_argument("--base", required=True, help="the dataset's cache folder (one sub-folder per data version)")
    ca.add_argument("--out", required=True, help="where to write the pointer to the cache in use")

    s = dsub.add_parser("stage", help="make one configured dataset available (tiny generator or dvc pull)")
    s.add_argument("--spec", type=_json, required=True, help="dataset config as JSON (name, kind, root, ...)")
    s.add_argument("--stamp", required=True, help="where to write the dataset's provenance stamp")
    pr = dsub.add_parser("prepare", help="turn an official download into the canonical layout")
    pr.add_argument("name")
    pr.add_argument(
        "--from",
        dest="source",
        required=True,
        action="append",
        help="extracted folder, archive or file (repeat for datasets shipped in several parts)",
    )
    pr.add_argument("--to", help="destination (default data/<NAME>)")
    pr.add_argument(
        "--no-count-check", action="store_true", help="accept subsets (counts differ from the official ones)"
    )
    pr.add_argument("--overwrite", action="store_true")
    mf = dsub.add_parser(
        "manifest", help="write MANIFEST.sha256 for a dataset folder you arranged yourself (re-run after changes)"
    )
    mf.add_argument("root", help="dataset folder in the canonical layout (docs/datasets.md)")
    c = dsub.add_parser("check", help="verify a dataset against its MANIFEST.sha256")
    c.add_argument("name", help="dataset name (lol, sidd, ...) or its folder")
    c.add_argument("--limit", type=int, default=50, help="list at most this many files per problem")
    d.set_defaults(func=cmd_data)

    tr = sub.add_parser("train", help="train one method variant (a Snakemake job)")
    tr.add_argument("--spec", type=_json, required=True)
    tr.add_argument("--out", required=True)
    tr.add_argument("--stamp", help="the training dataset's stamp; the data are checked against it first")
    tr.add_argument("--cache", help="the train_cache rule's output: read images from the training-ready cache")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate one cell (a Snakemake job)")
    ev.add_argument("--spec", type=_json, required=True)
    ev.add_argument("--checkpoint")
    ev.add_argument("--out", required=True)
    ev.add_argument("--stamp", help="the dataset's stamp; the test files are checked against it first")
    ev.set_defaults(func=cmd_evaluate)

    inf = sub.add_parser("infer", help="enhance images with a checkpoint (project or official format)")
    inf.add_argument("method")
    inf.add_argument("inputs", nargs="+", metavar="INPUT")
    inf.add_argument("--checkpoint", required=True)
    inf.add_argument("--variant", default="default")
    inf.add_argument("-o", "--output", required=True, help="output folder")
    inf.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    inf.set_defaults(func=cmd_infer)

    pf = sub.add_parser("profile", help="params, FLOPs, MACs, latency and peak memory of a method")
    pf.add_argument("method")
    pf.add_argument("--variant", default="default")
    pf.add_argument("--size", type=_size, action="append", help="HxW (repeatable; default 256x256)")
    pf.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pf.add_argument("--warmup", type=int, default=3)
    pf.add_argument("--repeats", type=int, default=20)
    pf.add_argument("--json", action="store_true", help="print a JSON object")
    pf.set_defaults(func=cmd_profile)

    pj = sub.add_parser("profile-job", help="profile one method variant at the configured sizes (a Snakemake job)")
    pj.add_argument("--spec", type=_json, required=True)
    pj.add_argument("-o", "--output", required=True)
    pj.set_defaults(func=cmd_profile_job)

    gr = sub.add_parser("grid", help="the visual comparison of one dataset (the grid rule's job)")
    gr.add_argument("--spec", type=_json, required=True, help='{"dataset": {...}, "cells": [{path, label, baseline}]}')
    gr.add_argument("--out", required=True, help="the grid's folder (crops, full images, grid.json)")
    gr.set_defaults(func=cmd_grid)

    tb = sub.add_parser("tables", help="collect metrics.json and profiles into results/tables/*.csv")
    tb.add_argument("--results", default="results")
    tb.add_argument("--cells", type=_json, default=None, help="JSON list of the expected cells (Cell.record)")
    tb.add_argument(
        "--configfile",
        nargs="+",
        help="config file(s), merged in order, whose cells are expected (missing ones listed)",
    )
    tb.add_argument("--out", default="results/tables")
    tb.set_defaults(func=cmd_tables)

    rp = sub.add_parser("report", help="render the HTML report from the tables")
    rp.add_argument("--tables", default="results/tables")
    rp.add_argument("--out", default="results/report/index.html")
    rp.add_argument("--results", default="results")
    rp.add_argument(
        "--configfile", nargs="+", help="the config file(s) the results come from (shown in the re-run commands)"
    )
    rp.set_defaults(func=cmd_report)

    sub.add_parser("run", help="run snakemake with the arguments that follow, recovering a killed run's stale lock")

    ce = sub.add_parser("cell", help="re-run exactly one table cell through Snakemake (extra snakemake args after --)")
    ce.add_argument("dataset")
    ce.add_argument("method")
    ce.add_argument("variant")
    ce.add_argument("run", nargs="?", default="seed0")
    ce.add_argument(
        "--configfile",
        nargs="+",
        default=["config/config.yaml"],
        help="config file(s), later ones overlaying earlier ones (as Snakemake merges them)",
    )
    ce.add_argument("-n", "--dry-run", action="store_true")
    ce.add_argument("--forcerun", action="store_true", help="recompute the cell even if it is up to date")
    ce.set_defaults(func=cmd_cell, snakemake_args=[])

    rl = sub.add_parser("release", help="bundle the cells' checkpoints, metrics and tables into release/ (DVC)")
    rl.add_argument("--configfile", nargs="+", default=["config/config.yaml"], help="the config file(s) of the table")
    rl.add_argument("--cell", action="append", help="only this cell, dataset/method/variant/run (repeatable)")
    rl.add_argument("--outputs", action="store_true", help="also the output images (large)")
    rl.add_argument("--out", default="release")
    rl.add_argument("--no-dvc", action="store_true", help="do not run `dvc add` on the bundle")
    rl.set_defaults(func=cmd_release)

    vf = sub.add_parser("verify", help="re-run released cells without training and compare with the claimed numbers")
    vf.add_argument("cell", nargs="*", help="dataset [method variant [run]]: one cell, or a dataset's whole table")
    vf.add_argument("--all", action="store_true", help="every released cell")
    vf.add_argument("--retrain", action="store_true", help="also retrain the cell from scratch and compare")
    vf.add_argument("--release", default="release", help="the release folder (dvc pull it first)")
    vf.add_argument("--configfile", nargs="+", help="your overlays on the released config, e.g. dataset roots")
    vf.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # everything after `run` belongs to snakemake, options included
        from llbench.runner import snakemake

        return snakemake([a for a in argv[1:] if a != "--"])
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []  # `llbench cell ... -- <snakemake args>`
    args = build_parser().parse_args(argv[: len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    if args.cmd == "cell":
        args.snakemake_args = extra
    try:
        return args.func(args)
    except (ValueError, KeyError, OSError) as e:
        # One clear line for bad input (the engine's errors name the file or key); nothing half-written.
        if os.environ.get("LLBENCH_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"llbench {args.cmd}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
