# Params, FLOPs (FlopCounterMode, math SDPA), MACs, latency and peak memory per method variant.


rule profile:
    output:
        "results/profile/{method}/{variant}.json",
    params:
        spec=lambda wc: arg(wf.profile_spec(CFG, wc.method, wc.variant)),
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        "logs/profile/{method}/{variant}.log",
    shell:
        "LLBENCH_THREADS={threads} llbench profile-job --spec {params.spec} -o {output:q} > {log:q} 2>&1"
