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


rule train_cache:
    input:
        stamp=layout.stamp("{dataset}"),
    output:
        layout.train_cache_pointer("{dataset}"),
    params:
        spec=lambda wc: arg({"name": wc.dataset, **CFG["datasets"][wc.dataset]}),
        base=lambda wc: layout.train_cache(wc.dataset),
    log:
        layout.cache_log("{dataset}"),
    shell:
        "llbench data cache --spec {params.spec} --stamp {input.stamp:q} --base {params.base:q}"
        " --out {output:q} > {log:q} 2>&1"
