# Params, FLOPs (FlopCounterMode, math SDPA), MACs, latency and peak memory per method variant.


rule profile:
    output:
        layout.profile("{method}", "{variant}"),
    params:
        spec=lambda wc: arg(wf.profile_spec(CFG, wc.method, wc.variant)),
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        layout.profile_log("{method}", "{variant}"),
    shell:
        "LLBENCH_THREADS={threads} llbench profile-job --spec {params.spec} -o {output:q} > {log:q} 2>&1"
