# Training: one job per (training dataset, method, variant, seed). Resumes from resume.pt if killed.


rule train:
    input:
        stamp=lambda wc: stamp(wc.dataset),
    output:
        checkpoint="results/{dataset}/{method}/{variant}/seed{seed}/checkpoint.pt",
        log="results/{dataset}/{method}/{variant}/seed{seed}/train_log.csv",
        config="results/{dataset}/{method}/{variant}/seed{seed}/config.json",
    params:
        spec=lambda wc: arg(wf.train_spec(CFG, train_cell(wc))),
        out=lambda wc, output: os.path.dirname(output.checkpoint),
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        "logs/train/{dataset}/{method}/{variant}/seed{seed}.log",
    shell:
        "LLBENCH_THREADS={threads} llbench train --spec {params.spec} --stamp {input.stamp:q}"
        " --out {params.out:q} > {log:q} 2>&1"
