"""SLURM through snakemake-executor-plugin-slurm: the profile's dry run, the sbatch command it generates for
our rules, and a live single-node cluster (munged + slurmctld + slurmd started here) running a 2-rule DAG.

The first two always run: a directory of fake SLURM commands is put first on PATH, so nothing reaches a
real cluster and ``sbatch`` only records its arguments. The live test needs Debian's ``slurm-wlm`` and
``munge`` (``apt-get install -y slurm-wlm munge``) and root (slurmd launches the jobs); it skips otherwise.
Everything it starts lives under a temporary directory (private config, munge socket, ports, spool) and is
stopped at teardown; /etc is never touched.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
PROFILE = REPO / "workflow" / "profiles" / "slurm"
SMOKE = REPO / "config" / "smoke.yaml"
TRAIN_TARGET = "results/tiny-lol/sci/stage3/seed0/checkpoint.pt"

FAKE_SBATCH = """#!{python}
import json, os, sys
with open(os.environ["FAKE_SLURM_CALLS"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.stderr.write("fake sbatch: submission recorded, nothing run\\n")
sys.exit(1)
"""
# every other command the plugin may call (account guess, partitions, status, limits): "no cluster here"
FAKE_OTHERS = ("sacct", "sacctmgr", "sshare", "sinfo", "scontrol", "squeue", "scancel", "srun")


def fake_slurm_env(tmp: Path) -> dict[str, str]:
    """An environment whose PATH starts with fake SLURM commands; sbatch calls go to ``tmp/calls.jsonl``."""
    bindir = tmp / "fakebin"
    bindir.mkdir(parents=True)
    (bindir / "sbatch").write_text(FAKE_SBATCH.format(python=sys.executable))
    for name in FAKE_OTHERS:
        (bindir / name).write_text(f'#!/bin/sh\necho "fake {name}: no cluster" >&2\nexit 1\n')
    for f in bindir.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SNAKEMAKE_PROFILE"))}
    env["PATH"] = f"{bindir}:{BIN}:{env.get('PATH', '')}"
    env["FAKE_SLURM_CALLS"] = str(tmp / "calls.jsonl")
    return env


def sbatch_calls(tmp: Path) -> list[list[str]]:
    path = tmp / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def option(argv: list[str], flag: str) -> str | None:
    """Value of ``flag`` in an argv, written ``flag value`` or ``flag=value``; None when absent."""
    for i, a in enumerate(argv):
        if a == flag:
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


# ---------------------------------------------------------------------------------------- dry run


def test_profile_dry_run_plans_jobs_and_submits_nothing(tmp_path):
    # its own working directory: the user's results/ (e.g. after `make report`) must not change the plan
    env = fake_slurm_env(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run(
        [SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "--profile", str(PROFILE), "--configfile", str(SMOKE)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "This was a dry-run" in log
    assert sbatch_calls(tmp_path) == []  # a dry run never submits
    # the profile's set-resources are what the planned train jobs carry
    train_blocks = [b for b in log.split("\nrule ") if b.startswith("train:")]
    assert train_blocks, log[-2000:]
    for block in train_blocks:
        res = next(line for line in block.splitlines() if "resources:" in line)
        for want in ("slurm_partition=gpu", "runtime=2880", "mem_mb=32000", "cpus_per_task=8", "gpu=1"):
            assert want in res, res


# ---------------------------------------------------------------------------- generated submission


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """Run the real CLI with the slurm profile on one train job and one dataset job; sbatch is fake."""
    tmp = tmp_path_factory.mktemp("slurm_submit")
    env = fake_slurm_env(tmp)
    wd = tmp / "wd"
    (wd / "resources" / "stamps").mkdir(parents=True)
    (wd / "resources" / "stamps" / "tiny-lol.json").write_text("{}")  # train's inputs exist; tiny-sidd's not
    pointer = wd / "resources" / "cache" / "train" / "tiny-lol.json"  # the training cache, newer than the stamp
    pointer.parent.mkdir(parents=True)
    pointer.write_text("{}")
    os.utime(pointer, (time.time() + 5, time.time() + 5))
    cmd = [
        SNAKEMAKE,
        TRAIN_TARGET,
        "resources/stamps/tiny-sidd.json",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(wd),
        "--profile",
        str(PROFILE),
        "--configfile",
        str(SMOKE),
        "--slurm-init-seconds-before-status-checks",
        "1",
    ]  # only to end quickly after the failed submits
    out = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=180)
    calls = sbatch_calls(tmp)
    by_rule: dict[str, list[list[str]]] = {}
    for argv in calls:
        by_rule.setdefault(option(argv, "--comment").split("_wildcards_")[0], []).append(argv)
    return out, by_rule


def test_sbatch_for_train_requests_gpu_partition_runtime_memory_cpus(submitted):
    out, by_rule = submitted
    assert out.returncode != 0 and "fake sbatch: submission recorded" in out.stderr  # submitted, then refused
    train = by_rule["rule_train"][0]
    assert train[0] == "--parsable"
    assert option(train, "--comment") == "rule_train_wildcards_tiny-lol_sci_stage3_0"
    assert option(train, "-p") == "gpu"
    assert option(train, "-t") == "2880"
    assert option(train, "--mem") == "32000"
    assert option(train, "--cpus-per-task") == "8"
    assert option(train, "--gpus") == "1"
    assert option(train, "--ntasks") is None  # GPU jobs get no implicit task geometry
    assert "--export=ALL" in train  # the job sees this venv's PATH
    job = shlex.split(option(train, "--wrap"))
    assert job[:3] == [sys.executable, "-m", "snakemake"]
    assert option(job, "--target-jobs") == "train:dataset=tiny-lol,method=sci,variant=stage3,seed=0"
    assert option(job, "--executor") == "slurm-jobstep"


def test_bookkeeping_rules_run_on_the_submitting_host(submitted):
    """``localrules: dataset, tables, report``: dvc pull needs the submitting host's network; the rest is quick."""
    _, by_rule = submitted
    assert "rule_train" in by_rule
    assert not {"rule_dataset", "rule_tables", "rule_report"} & set(by_rule)


def test_failed_job_is_resubmitted_once(submitted):
    """``retries: 1``: a failed (e.g. preempted) job gets a second attempt, which resumes from resume.pt."""
    _, by_rule = submitted
    attempts = [option(shlex.split(option(a, "--wrap")), "--attempt") for a in by_rule["rule_train"]]
    assert attempts == ["1", "2"]


def test_slurm_profile_latency_wait_reaches_the_jobs(submitted):
    """profiles/default is loaded too, as the workflow profile, and wins per key (snakemake --help,
    --workflow-profile): it must not set latency-wait, or the slurm profile's 60 s never reaches the jobs."""
    _, by_rule = submitted
    job = shlex.split(option(by_rule["rule_train"][0], "--wrap"))
    assert option(job, "--latency-wait") == "60"


# ---------------------------------------------------------------------------------- live cluster

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "srun", "scancel", "sinfo")

SLURM_CONF = """\
ClusterName=llbench-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=300
ReturnToService=2
MpiDefault=none
GresTypes=gpu
NodeName=llnode NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
# a pretend GPU: SLURM allocates it like a device and sets CUDA_VISIBLE_DEVICES, nothing opens the file
GRES_CONF = "Name=gpu File=/dev/null\n"

# The jobstep plugin strips every SLURM_* variable except a few job ids from the environment of the srun
# it runs inside the job (snakemake_executor_plugin_slurm_jobstep run_job, keep_slurm), SLURM_CONF included;
# a real cluster's srun finds /etc/slurm/slurm.conf, this private one needs the path put back.
SRUN_SHIM = '#!/bin/sh\nSLURM_CONF={conf} exec {srun} "$@"\n'

LIVE_SNAKEFILE = """\
localrules: all

rule all:
    input: "cpu.json", "gpu.json"

rule cpu_job:
    output: "cpu.json"
    resources: gpu=0, cpus_per_task=1
    shell: "{py} probe.py > {{output}}"

rule gpu_job:
    output: "gpu.json"
    resources: gpu=1, cpus_per_task=1
    shell: "{py} probe.py lease > {{output}}"
"""
PROBE = """\
import json, os, sys
rec = {"job": os.environ.get("SLURM_JOB_ID"), "cvd": os.environ.get("CUDA_VISIBLE_DEVICES")}
if sys.argv[1:] == ["lease"]:
    from llbench.gpu import lease
    got = lease("auto")
    rec["lease"] = [got.kind, got.device]
print(json.dumps(rec))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in logs if p.exists())
    pytest.fail(f"{what} not ready after {timeout:.0f} s\n{tails}")


@pytest.fixture(scope="module")
def live_slurm(tmp_path_factory):
    """A private one-node SLURM cluster (2 CPUs, 1 pretend GPU); yields the environment to talk to it."""
    missing = [c for c in DAEMONS if shutil.which(c) is None]
    if missing:
        pytest.skip(f"SLURM not installed (missing {', '.join(missing)}); apt-get install -y slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the live SLURM test needs root: slurmd launches jobs as their submitting user")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "shim"):
        (d / sub).mkdir()
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(host=host, ctld_port=free_port(), d_port=free_port(), d=d, cpus=min(2, os.cpu_count() or 1))
    )
    (d / "gres.conf").write_text(GRES_CONF)
    shim = d / "shim" / "srun"
    shim.write_text(SRUN_SHIM.format(conf=conf, srun=shutil.which("srun")))
    shim.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "LLBENCH_", "SNAKEMAKE_PROFILE")) and k != "CUDA_VISIBLE_DEVICES"
    }
    env.update(
        SLURM_CONF=str(conf),
        PATH=f"{d / 'shim'}:{BIN}:{env.get('PATH', '')}",
        PYTHONPATH=f"{REPO}:{env.get('PYTHONPATH', '')}".rstrip(":"),
    )
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with open(d / f"{name}.out", "w") as out:
            procs.append(
                subprocess.Popen(
                    [shutil.which(name), *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    logs = [d / n for n in ("munged.out", "slurmctld.out", "slurmd.out", "slurmctld.log", "slurmd.log")]
    try:
        start(
            "munged",
            "--foreground",
            "--force",
            f"--socket={d}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={d}/munged.pid",
            f"--seed-file={d}/munged.seed",
            f"--log-file={d}/munged.log",
        )
        wait_for(lambda: (d / "munge.socket").exists(), 15, "munged", logs)
        start("slurmctld", "-D", "-i")
        start("slurmd", "-D", "-N", "llnode")

        def idle() -> bool:
            q = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            return q.returncode == 0 and q.stdout.strip() == "idle"

        wait_for(idle, 30, "slurm node", logs)
        yield env, d
    finally:
        subprocess.run(["scancel", "--user", str(os.getuid())], env=env, capture_output=True)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_live_slurm_runs_a_two_rule_dag(live_slurm, tmp_path):
    """Both rules go through sbatch (--gpus=1 for one), run on the node, and the DAG completes."""
    env, _ = live_slurm
    (tmp_path / "Snakefile").write_text(LIVE_SNAKEFILE.format(py=shlex.quote(sys.executable)))
    (tmp_path / "probe.py").write_text(PROBE)
    cmd = [
        SNAKEMAKE,
        "--executor",
        "slurm",
        "--jobs",
        "2",
        "--workflow-profile",
        "none",
        "--default-resources",
        "slurm_partition=debug",
        "runtime=5",
        "mem_mb=100",
        "--slurm-status-command",
        "squeue",  # no accounting here, so sacct cannot answer
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--latency-wait",
        "5",
    ]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    logs = sorted((tmp_path / ".snakemake").rglob("slurm_logs/**/*.log"))
    slurm_logs = "\n".join(p.read_text()[-1500:] for p in logs)
    assert out.returncode == 0, out.stderr[-4000:] + slurm_logs
    assert out.stderr.count("has been submitted with SLURM jobid") == 2
    cpu = json.loads((tmp_path / "cpu.json").read_text())
    gpu = json.loads((tmp_path / "gpu.json").read_text())
    assert cpu["job"] and gpu["job"] and cpu["job"] != gpu["job"]  # two SLURM jobs
    assert cpu["cvd"] is None  # no GPU requested, none assigned
    # --gpus=1 reached SLURM: it assigned the node's device, and the job respects it instead of leasing
    assert gpu["cvd"] == "0" and gpu["lease"] == ["assigned", "0"]
