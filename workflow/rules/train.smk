# Training: one job per (training dataset, method, variant, seed). Resumes from resume.pt if killed.


rule train:
    input:
        lambda wc: stamp(wc.dataset),
    output:
        checkpoint="results/{dataset}/{method}/{variant}/seed{seed}/checkpoint.pt",
        log="results/{dataset}/{method}/{variant}/seed{seed}/train_log.csv",
        config="results/{dataset}/{method}/{variant}/seed{seed}/config.json",
    params:
        spec=lambda wc: arg(wf.train_spec(CFG, train_cell(wc))),
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        "logs/train/{dataset}/{method}/{variant}/seed{seed}.log",
    shell:
        "LLBENCH_THREADS={threads} {LLBENCH} train --spec {params.spec} --out $(dirname {output.checkpoint}) > {log} 2>&1"
