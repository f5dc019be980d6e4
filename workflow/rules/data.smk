# Datasets: generate the tiny ones, pull real ones with DVC (path targets only: DVC bug #11075), and
# record the manifest hash. Rules depend on data.dvc, never on pulled files (DVC resets mtimes).


rule dataset:
    input:
        lambda wc: [] if "tiny" in CFG["datasets"][wc.dataset] else [str(wf.REPO / "data.dvc")],
    output:
        "resources/stamps/{dataset}.json",
    params:
        spec=lambda wc: arg({"name": wc.dataset, **CFG["datasets"][wc.dataset]}),
    log:
        "logs/data/{dataset}.log",
    shell:
        "{LLBENCH} data stage --spec {params.spec} --stamp {output} > {log} 2>&1"
