# Training: one job per (training dataset, method, variant, seed). Resumes from resume.pt if killed.


rule train:
    input:
        stamp=lambda wc: layout.stamp(wc.dataset),
    output:
        checkpoint=layout.checkpoint("{dataset}", "{method}", "{variant}", "seed{seed}"),
        log=f"{TRAIN_RUN}/train_log.csv",
        config=f"{TRAIN_RUN}/config.json",
    params:
        spec=lambda wc: arg(wf.train_spec(CFG, train_cell(wc))),
        out=lambda wc, output: os.path.dirname(output.checkpoint),
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        layout.train_log("{dataset}", "{method}", "{variant}", "seed{seed}"),
    shell:
        "LLBENCH_THREADS={threads} llbench train --spec {params.spec} --stamp {input.stamp:q}"
        " --out {params.out:q} > {log:q} 2>&1"
