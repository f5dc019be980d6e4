# Datasets: generate the tiny ones, pull real ones with DVC (path targets only: DVC bug #11075), check a
# folder of the user's own against its manifest, and record the manifest hash (llbench/data/stage.py).


rule dataset:
    input:
        dataset_inputs,
    output:
        layout.stamp("{dataset}"),
    params:
        spec=lambda wc: arg({"name": wc.dataset, **CFG["datasets"][wc.dataset]}),
    log:
        layout.data_log("{dataset}"),
    shell:
        "llbench data stage --spec {params.spec} --stamp {output:q} > {log:q} 2>&1"
