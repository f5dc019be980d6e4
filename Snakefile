# lowlight-bench: the benchmark DAG. `snakemake --configfile config/smoke.yaml --cores all` runs the
# smoke matrix; without --configfile the full benchmark of config/config.yaml runs.
from snakemake.utils import min_version

min_version("9.0")


if not config:
    configfile: "config/config.yaml"


# load rules
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/report.smk"


# quick bookkeeping runs on the submitting host (and dvc pull needs its network) under a cluster executor
localrules:
    dataset,
    tables,
    grid,
    report,


# target rules
rule all:
    default_target: True
    input:
        layout.REPORT,


onerror:
    # a failed job: still render the report from what exists when the report was a target (workflow/rules/common.smk)
    if any(job.rule.name == "report" for job in workflow.dag.jobs):
        partial_report()
