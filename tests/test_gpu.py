"""GPU leasing with a fake pool: distinct devices under a real Snakemake DAG, release on SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llbench import gpu

HOLD = (
    "import sys, time; from llbench import gpu; l = gpu.lease('auto'); print(l.device, flush=True); "
    "time.sleep(float(sys.argv[1])); l.release()"
)


@pytest.fixture
def pool(tmp_path, monkeypatch):
    monkeypatch.setenv("LLBENCH_GPUS", "0,1,2,3")
    monkeypatch.setenv("LLBENCH_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("LLBENCH_LEASE_LOG", str(tmp_path / "leases.jsonl"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("LLBENCH_LEASED", raising=False)
    monkeypatch.setattr(gpu, "LOCK_DIR", tmp_path / "locks")
    return tmp_path


def test_pool_from_env_and_config(monkeypatch):
    monkeypatch.setenv("LLBENCH_GPUS", "1,3")
    assert gpu.gpu_pool() == [1, 3]
    assert gpu.gpu_pool([2]) == [2]  # config wins
    monkeypatch.setenv("LLBENCH_GPUS", "a,b")
    with pytest.raises(ValueError, match="LLBENCH_GPUS"):
        gpu.gpu_pool()


def test_scheduler_assigned_device_is_respected(pool, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    lease = gpu.lease("auto")
    assert (lease.kind, lease.device) == ("assigned", "5")
    assert not (pool / "locks").exists()


def test_cpu_device_leases_nothing(pool):
    lease = gpu.lease("cpu")
    assert lease.kind == "cpu" and os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_killed_job_frees_its_device(pool, monkeypatch):
    monkeypatch.setenv("LLBENCH_GPUS", "0")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "0"
    other = subprocess.run(
        [sys.executable, "-c", HOLD.replace("'auto'", "'auto', timeout=0.5"), "0"], capture_output=True, text=True
    )
    assert "no free GPU" in other.stderr  # device 0 is held
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    again = subprocess.run([sys.executable, "-c", HOLD, "0"], capture_output=True, text=True, timeout=30)
    assert again.stdout.strip() == "0"


def test_snakemake_dag_never_shares_a_device(pool):
    """12 jobs of different lengths through a real Snakemake DAG with --resources gpu=4."""
    wf = pool / "wf"
    wf.mkdir()
    (wf / "Snakefile").write_text(
        textwrap.dedent(f"""
        rule all:
            input: expand("out/{{i}}.txt", i=range(12))
        rule job:
            output: "out/{{i}}.txt"
            resources: gpu=1
            params: seconds=lambda wc: 0.2 + 0.15 * (int(wc.i) % 4)
            shell: "{sys.executable} -c \\"{HOLD}\\" {{params.seconds}} > {{output}}"
    """)
    )
    out = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "--cores", "6", "--resources", "gpu=4", "--quiet", "all"],
        cwd=wf,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    events = [json.loads(line) for line in (pool / "leases.jsonl").read_text().splitlines()]
    held: dict[str, int] = {}
    max_concurrent = 0
    for e in sorted(events, key=lambda e: (e["time"], e["event"] == "acquire")):
        if e["event"] == "acquire":
            assert e["device"] not in held, f"device {e['device']} leased twice at once"
            held[e["device"]] = e["pid"]
        else:
            assert held.pop(e["device"]) == e["pid"]
        max_concurrent = max(max_concurrent, len(held))
    assert sum(e["event"] == "acquire" for e in events) == 12
    assert 2 <= max_concurrent <= 4
    assert {e["device"] for e in events} <= {"0", "1", "2", "3"}
