# Training: one job per (training dataset, method, variant, seed). Resumes from resume.pt if killed.


rule train:
    input:
        unpack(train_inputs),
    output:
        checkpoint=layout.checkpoint("{dataset}", "{method}", "{variant}", "seed{seed}"),
        log=f"{TRAIN_RUN}/train_log.csv",
        config=f"{TRAIN_RUN}/config.json",
    params:
        spec=lambda wc: arg(wf.train_spec(CFG, train_cell(wc))),
        out=lambda wc, output: os.path.dirname(output.checkpoint),
        cache=lambda wc, input: f"--cache {shlex.quote(input.cache)}" if "cache" in input.keys() else "",
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        layout.train_log("{dataset}", "{method}", "{variant}", "seed{seed}"),
    shell:
        "LLBENCH_THREADS={threads} llbench train --spec {params.spec} --stamp {input.stamp:q} {params.cache}"
        " --out {params.out:q} > {log:q} 2>&1"
