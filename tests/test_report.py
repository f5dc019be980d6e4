"""The HTML report: structure, escaping, n/a, paper numbers, links to cells, figures; then a real browser.

The browser test opens the rendered report in headless Chromium (Debian's ``chromium``; ``make test-setup``
installs it) over the DevTools protocol on a pipe (``--remote-debugging-pipe``, stdlib only): no console
errors, no request leaves ``file:``, every image decodes, the tables sort, and a full-page screenshot is
saved (the test's tmp dir and /tmp/report_screenshot.png).
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_tables import build_results, write_cell, write_dataset

from llbench import report, tables

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = Path("/tmp/report_screenshot.png")
BAD = "tiny-<img src=x onerror=window.pwned=2>"  # a dataset name with markup (no "/": it is a folder name)


# ---- a tiny DOM, enough to read tables (stdlib html.parser) ---------------------------------------
class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if c.tag == tag and (cls is None or cls in c.attrs.get("class", "").split()):
                    out.append(c)
                out += c.find_all(tag, cls)
        return out


class _Parser(HTMLParser):
    VOID = {"meta", "link", "img", "br", "input", "hr", "source"}

    def __init__(self):
        super().__init__()
        self.root = Node("root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag == "br":
            self.cur.children.append(" ")
        if tag not in self.VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(html: str) -> Node:
    p = _Parser()
    p.feed(html)
    return p.root


def cells_text(tr: Node) -> list[str]:
    return [" ".join(td.text().split()) for td in tr.children if isinstance(td, Node) and td.tag in ("td", "th")]


# ---- the rendered fixture report ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    expected = build_results(root)
    # a name with markup (the Snakefile forbids it; the report must still escape it) and a raw SID table
    bad = BAD
    write_cell(
        root,
        bad,
        "input",
        "default",
        data_root=write_dataset(root, "resources/bad"),
        metrics={"psnr": [5, 6, 7], "ssim": [0.1] * 3, "niqe": None},
    )
    write_cell(
        root,
        "tiny-sid",
        "alen",
        "default",
        kind="raw",
        data_root="resources/missing-sid",
        train_dataset="tiny-sid",
        metrics={"psnr": [20, 21, 22], "ssim": [0.6] * 3, "niqe": None},
    )
    write_verifications(root / "results")
    tables.write_tables(root / "results", root / "results" / "tables", cells=expected)
    write_grids(root)
    out = report.render(root / "results" / "tables", root / "results" / "report" / "index.html")
    html = out.read_text()
    return root, out, html, parse(html)


def write_grids(root: Path) -> None:
    """The two visual comparisons the `grid` rule would make (it runs in the working directory)."""
    from llbench.report.grid import make_grid

    lol = {"name": "tiny-lol", "kind": "paired", "root": "resources/tiny/lol", "test": "test"}
    sid = {"name": "tiny-sid", "kind": "raw", "root": "resources/missing-sid", "test": "test"}
    tiles = [
        {"path": "results/tiny-lol/input/default/seed0", "label": "input (no method)", "baseline": True},
        {"path": "results/tiny-lol/sci/stage3/seed0", "label": "sci", "baseline": False},
        {"path": "results/tiny-lol/enlightengan/default/seed0", "label": "enlightengan", "baseline": False},
    ]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        make_grid(lol, tiles, Path("results/report/grids/tiny-lol"))
        alen = [{"path": "results/tiny-sid/alen/default/seed0", "label": "alen", "baseline": False}]
        make_grid(sid, alen, Path("results/report/grids/tiny-sid"))
    finally:
        os.chdir(cwd)


def write_verifications(results: Path) -> None:
    """Two `llbench verify` records: one cell re-run within tolerance, one whose PSNR claim is off."""
    from llbench.release import compare
    from llbench.runtime import atomic_write_json

    claims = {"psnr": 20.1234, "ssim": 0.81234, "niqe": 4.5}
    for cell, rerun in (
        ("tiny-lol/sci/stage3/seed0", claims),
        ("tiny-lol/enlightengan/default/seed0", {**claims, "psnr": 19.6}),
    ):
        record = {
            "cell": cell,
            "claimed_device": "cpu",
            "device": "cpu",
            "date": "2026-11-29T10:00:00+00:00",
            "problems": [],
            "rows": compare(claims, rerun, "cpu", "cpu"),
        }
        record["passed"] = all(r["status"] == "ok" for r in record["rows"])
        atomic_write_json(results / "verify" / f"{cell}.json", record)


def test_verification_section(rendered):
    _, _, html, dom = rendered
    table = dom.find_all("table", "verification")[0]
    rows = table.find_all("tbody")[0].find_all("tr")
    by_cell = {}
    for tr in rows:
        text = cells_text(tr)
        by_cell.setdefault(text[0], []).append((tr.attrs.get("class"), text))
    assert all(cls == "verify-ok" for cls, _ in by_cell["tiny-lol/sci/stage3/seed0"])
    failed = [t for cls, t in by_cell["tiny-lol/enlightengan/default/seed0"] if cls == "verify-fail"]
    assert len(failed) == 1 and failed[0][1:7] == [
        "PSNR (dB)",
        "20.12",
        "19.60",
        "0.523400",
        "identical at 2 decimals",
        "FAIL",
    ]
    assert 'href="#verification"' in html


def _section(dom: Node, dataset: str) -> Node:
    for s in dom.find_all("section", "dataset"):
        h3 = s.find_all("h3")[0]
        if isinstance(h3.children[0], str) and h3.children[0].strip() == dataset:  # then "(kind, native size)"
            return s
    raise AssertionError(f"no section for {dataset}")


def _main_rows(dom: Node, dataset: str) -> list[Node]:
    table = _section(dom, dataset).find_all("table", "main")[0]
    return table.find_all("tbody")[0].find_all("tr")


def _header(dom: Node, dataset: str) -> list[str]:
    table = _section(dom, dataset).find_all("table", "main")[0]
    return cells_text(table.find_all("thead")[0].find_all("tr")[0])


def test_every_table_starts_with_the_input_baseline(rendered):
    _, _, _, dom = rendered
    for dataset in ("tiny-lol", "tiny-sidd", "lol"):
        first = _main_rows(dom, dataset)[0]
        texts = cells_text(first)
        assert texts[0] == "input (no method)" and texts[1] == "default"
        assert texts[2] == "baseline"  # its source never reads "trained"
        assert "baseline" in first.attrs["class"].split()


def test_main_table_columns_and_values(rendered):
    _, _, _, dom = rendered
    head = _header(dom, "tiny-lol")
    assert head[:4] == ["method", "variant", "source", "runs"]
    assert head[4:7] == ["PSNR (dB) ↑", "SSIM ↑", "NIQE ↓"]
    assert head[7] == "secondary PSNR GT-mean (dB) ↑"  # secondary protocol columns are labelled as such
    assert head[8:] == [
        "params ↓",
        "GFLOPs @256² ↓",
        "GFLOPs @48x64 ↓",
        "latency (ms) @256² ↓",
        "peak mem (MB) @256² ↓",
        "paper (Δ = ours − paper)",
    ]
    rows = {cells_text(r)[0] + "/" + cells_text(r)[1]: cells_text(r) for r in _main_rows(dom, "tiny-lol")}
    assert list(rows) == ["input (no method)/default", "sci/stage3", "enlightengan ⚠ untrained VGG/default"]
    sci = rows["sci/stage3"]
    assert sci[3] == "2/2"
    assert sci[4] == "11.50 ± 0.71"  # mean ± std over two seeds
    assert sci[6] == "n/a"  # NIQE not applicable: never 0
    assert sci[8:11] == ["258", "0.0319", "0.00149"]
    assert rows["input (no method)/default"][7] == "n/a"  # GT-mean not computed for the input here


def test_best_value_per_column_excludes_the_baseline(rendered):
    _, _, _, dom = rendered
    rows = _main_rows(dom, "tiny-lol")
    best = {
        cells_text(r)[0]: [
            i
            for i, td in enumerate(c for c in r.children if isinstance(c, Node))
            if "best" in td.attrs.get("class", "").split()
        ]
        for r in rows
    }
    assert best["input (no method)"] == []
    assert 4 in best["enlightengan ⚠ untrained VGG"]  # PSNR 13 beats sci's 11.5
    assert 5 in best["sci"] and 8 in best["sci"]  # SSIM 0.6 and 258 params


def test_hover_shows_every_seed_interval(rendered):
    _, _, _, dom = rendered
    sci = _main_rows(dom, "tiny-lol")[1]
    td = [c for c in sci.children if isinstance(c, Node)][4]
    assert td.attrs["title"].startswith(
        "mean ± std over 2 seeds; seed0: 95% bootstrap CI [10.00, 12.00], 3 images; "
        "seed1: 95% bootstrap CI [11.00, 13.00]"
    )


def test_paper_column(rendered):
    _, _, html, dom = rendered
    tiny = cells_text(_main_rows(dom, "tiny-lol")[1])[-1]
    assert tiny == "n/a†"
    assert "never compared to them" in html
    lol = {cells_text(r)[0]: cells_text(r)[-1] for r in _main_rows(dom, "lol")}
    assert lol["input (no method)"] == "PSNR (dB) 7.77 (Δ ±0.00)"  # ours 7.773
    # SNR-Aware: PSNR against our paper-protocol column (23.61 - 24.61), SSIM against our SSIM
    assert lol["snr_aware"] == "PSNR (dB) 24.61 (Δ −1.00) SSIM 0.8420 (Δ −0.0420)"


def test_failed_and_missing_cells_are_listed_with_logs(rendered):
    _, _, html, dom = rendered
    summary = dom.find_all("p", "warning")[0].text()
    assert "results/tiny-lol/sci/stage2/seed0 (failed)" in summary
    assert "results/tiny-lol/sci/no_calibration/seed0 (missing)" in summary
    lsrw = cells_text(_main_rows(dom, "tiny-lsrw")[0])
    assert lsrw[:4] == ["sci", "stage3", "trained", "0/1 failed logs/train/tiny-lsrw/sci/stage3/seed0.log"]
    assert set(lsrw[4:7]) == {"n/a"}
    assert "logs/evaluate/tiny-lol/sci/stage2/seed0.log" in html


def test_names_and_logs_are_escaped(rendered):
    _, _, html, dom = rendered
    assert "<script>window" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html  # the failed cell's log tail
    assert "tiny-&lt;img src=x onerror=window.pwned=2&gt;" in html
    assert _main_rows(dom, BAD)  # the text survives, as text
    assert len(re.findall(r"<script\b", html)) == 1  # only assets/report.js


def test_every_number_links_to_its_cell(rendered):
    _, _, html, dom = rendered
    ids = {n.attrs["id"] for n in dom.find_all("tr") if "id" in n.attrs}
    links = [a.attrs["href"][1:] for a in dom.find_all("a") if a.attrs.get("href", "").startswith("#cell-")]
    assert len(links) > 20 and set(links) <= ids
    row = next(r for r in dom.find_all("tr") if r.attrs.get("id") == report.anchor("results/tiny-lol/sci/stage3/seed1"))
    text = " ".join(row.text().split())
    assert "llbench cell tiny-lol sci stage3 seed1 --configfile config/config.yaml" in text
    assert (
        "snakemake results/tiny-lol/sci/stage3/seed1/metrics.json --configfile config/config.yaml --cores all"
    ) in text
    assert tables_commit() in row.find_all("td")[4].attrs["title"]
    assert "d" * 12 in text and "torch 2.14.1" in text and "cpu" in text


def tables_commit() -> str:
    from test_tables import COMMIT

    return COMMIT


def test_raw_table_lists_the_excluded_scenes(rendered):
    _, _, _, dom = rendered
    note = " ".join(_section(dom, "tiny-sid").text().split())
    assert "misaligned scenes 10034, 10045, 10172 are excluded" in note
    assert "No “input (no method)” row" in note and "packed Bayer mosaic" in note  # identity is not run on raw
    assert "dataset images unavailable (FileNotFoundError)" in note  # no SID data on disk: the grid degrades


def test_ablation_tables(rendered):
    _, _, _, dom = rendered
    abl = [s for s in dom.find_all("section", "ablation")]
    assert [s.find_all("h3")[0].text() for s in abl] == ["sci on tiny-lol"]
    rows = [cells_text(r) for r in abl[0].find_all("tbody")[0].find_all("tr")]
    assert [r[0] for r in rows] == ["stage3 default", "stage1", "stage2", "no_calibration"]
    assert rows[1][3:7] == ["10.00", "−1.50", "0.5000", "−0.1000"]
    assert rows[2][3:7] == ["n/a", "n/a", "n/a", "n/a"] and "failed" in rows[2][2]


def test_figures_are_written_and_linked(rendered):
    _, out, html, dom = rendered
    srcs = [img.attrs["src"] for img in dom.find_all("img")]
    assert srcs and all((out.parent / s).is_file() for s in srcs)
    names = " ".join(srcs)
    for kind in (
        "cost-tiny-lol",
        "per-image-tiny-lol",
        "train-tiny-lol-sci",
        "ablation-tiny-lol-sci",
        "grids/tiny-lol/",
    ):
        assert kind in names, kind
    for s in srcs:
        if s.endswith(".png") and not s.startswith("grids/"):
            assert (out.parent / s).with_suffix(".svg").is_file()
    grid = _section(dom, "tiny-lol").find_all("figure", "tile")
    assert [" ".join(f.text().split()) for f in grid] == [
        "input (no method) 8.00 dB",
        "sci 10.00 dB",
        "enlightengan 12.00 dB",
        "target",
    ]  # image 000 of seed0
    assert all(f.find_all("a")[0].attrs["href"].endswith(".png") for f in grid)  # click: the full image
    assert "Snakemake's report" in html and 'href="snakemake.html"' in html


def test_partial_report_from_empty_tables(tmp_path):
    tables.write_tables(tmp_path / "results", tmp_path / "results" / "tables")
    html = report.render(tmp_path / "results" / "tables", tmp_path / "results" / "report" / "index.html").read_text()
    assert "No results yet" in html


def test_template_structure():
    """Pin the small templates and their hooks (house style: one env, autoescape, blocks)."""
    env = report.environment()
    assert env.autoescape("index.html") is True
    src = {p.name: p.read_text() for p in report.TEMPLATES.glob("*.html")}
    assert set(src) == {
        "base.html",
        "index.html",
        "macros.html",
        "section.html",
        "grid.html",
        "table_main.html",
        "table_ablation.html",
        "table_references.html",
        "table_cells.html",
        "table_verification.html",
    }
    blocks = {name: re.findall(r"{%-?\s*block\s+(\w+)", text) for name, text in src.items()}
    assert blocks["base.html"] == ["title", "head", "body"]
    assert blocks["index.html"] == [
        "body",
        "summary",
        "protocol",
        "main",
        "ablations",
        "training",
        "references",
        "verification",
        "cells",
    ]
    assert blocks["table_main.html"] == ["thead", "row", "after_table"]
    assert blocks["section.html"] == ["figures"]
    assert src["index.html"].startswith('{% extends "base.html" %}')
    assert not re.search(
        r"https?://",
        "".join(src.values()) + (report.ASSETS / "report.css").read_text() + (report.ASSETS / "report.js").read_text(),
    )  # nothing from the network


def test_filters():
    nan = float("nan")
    assert [report.fmt(v) for v in (None, nan, "nan", 0.0, 0, 1234.5)] == [
        "n/a",
        "n/a",
        "n/a",
        "0.00",
        "0.00",
        "1,234.50",
    ]  # 0 is a number, not a missing value
    assert report.fmt(8636675, "int") == "8,636,675"
    assert [report.fmt(v, "sig") for v in (0.031850496, 19.49, 323.6, 0.0)] == ["0.0319", "19.5", "324", "0"]
    assert [report.fmt_delta(v) for v in (1.234, -1.5, 0.003, None)] == ["+1.23", "−1.50", "±0.00", "n/a"]
    assert report.anchor("results/a/b/c/seed0").startswith("cell-a-b-c-seed0-")
    assert report.anchor("results/<x>/b") != report.anchor("results/-x-/b")


def test_reference_numbers():
    refs = report.load_references()
    key = {(r["method"], r["variant"], r["dataset"], r["metric"], r["compare_to"]): r for r in refs}
    assert key[("snr_aware", None, "lol", "psnr", "psnr_paper")]["value"] == 24.61
    assert key[("snr_aware", None, "lol", "ssim", None)]["value"] == 0.842
    assert key[("input", None, "lol", "psnr", None)]["value"] == 7.77
    assert key[("sci", None, "lsrw", "psnr", None)]["value"] == 15.0168
    assert key[("sci", None, None, "params", None)]["value"] == 258
    bench = key[("lgbpn", None, "sidd", "psnr", None)]
    assert (bench["value"], bench["comparable"]) == (37.28, False)  # SIDD benchmark, not our validation split
    assert key[("lgbpn", None, "sidd", "psnr", "psnr_skimage")]["value"] == 37.31
    assert key[("enlightengan", None, "dicm", "niqe", None)]["value"] == 3.570
    for r in refs:
        assert r["dataset"] is None or not r["dataset"].startswith("tiny-")
        assert r["source"] and r["protocol"]


def test_bad_reference_entries_are_rejected(tmp_path):
    p = tmp_path / "refs.yaml"
    p.write_text("- {method: sci, dataset: tiny-lol, metric: psnr, value: 1, protocol: x, source: y}\n")
    with pytest.raises(ValueError, match="'tiny-lol' is not a real dataset"):
        report.load_references(p)
    p.write_text("- {method: sci, dataset: lol, metric: psnr, value: '1', protocol: x, source: y}\n")
    with pytest.raises(ValueError, match="is not a number"):
        report.load_references(p)


# ---- headless Chromium over the DevTools protocol (pipe transport, stdlib only) -------------------------
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
]


class DevTools:
    """Chrome DevTools protocol over ``--remote-debugging-pipe`` (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, binary: str, profile: Path, stderr: Path):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def fds():
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=stderr.open("wb"),
        )
        self._stderr = stderr
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if ready:
                chunk = os.read(self._out_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe: {self._stderr.read_text(errors='replace')[-2000:]}")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("method") == event:
                    return e
            self.events.append(self._next(deadline))

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._next(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._out_r):
            os.close(fd)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium not installed (Debian: apt-get install chromium; `make test-setup` does it)")


def test_report_in_headless_chromium(rendered, tmp_path):
    _, out, _, _ = rendered
    browser = DevTools(_chromium(), tmp_path / "profile", tmp_path / "chromium.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(f"{domain}.enable", session=sid)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session=sid,
        )
        browser.send("Page.navigate", {"url": out.as_uri()}, session=sid)
        browser.wait_for("Page.loadEventFired")
        browser.drain(0.5)

        def js(expr: str):
            res = browser.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=sid)
            assert "exceptionDetails" not in res, res
            return res["result"].get("value")

        n_tables = js("document.querySelectorAll('table.main').length")
        assert n_tables == 6  # tiny-lol, tiny-lsrw, lol, tiny-<img..>, tiny-sid, tiny-sidd
        assert js("document.documentElement.getAttribute('data-sortable-ready')") == str(
            js("document.querySelectorAll('table.sortable').length")
        )
        broken = js("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert js("document.images.length") > 10 and broken == []
        assert js("typeof window.pwned") == "undefined"
        # sorting: PSNR of the first table, descending after two clicks; the baseline row stays on top
        order = js("""(() => {
            const t = document.querySelector('table.main');
            const th = t.tHead.rows[0].cells[4];
            th.click(); th.click();
            return Array.from(t.tBodies[0].rows).map(r => r.cells[0].textContent.trim().split(/\\s/)[0]);
        })()""")
        assert order[0] == "input" and order[1:] == ["enlightengan", "sci"]
        # the verification section: the failed claim is shown in red
        red = js("getComputedStyle(document.querySelector('table.verification tr.verify-fail td')).color")
        assert red == "rgb(179, 38, 30)", red
        height = js("Math.min(document.documentElement.scrollHeight, 16000)")
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=sid,
        )
        browser.drain(0.3)
        shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"}, session=sid)["data"])
    finally:
        browser.close()
    (tmp_path / "report.png").write_bytes(shot)
    try:
        SCREENSHOT.write_bytes(shot)
    except OSError:
        pass
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000

    events = browser.events
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    external = [u for u in requests if not u.startswith(("file:", "data:", "about:", "blob:"))]
    assert requests and external == []
    errors = [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
    errors += [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert")
    ]
    errors += [
        e["params"]["entry"]
        for e in events
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"
    ]
    assert errors == []
