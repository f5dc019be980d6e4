# Evaluation of one cell at native resolution (DESIGN.md ▶ Metrics protocol).


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        metrics="results/{dataset}/{method}/{variant}/{run}/metrics.json",
        per_image="results/{dataset}/{method}/{variant}/{run}/per_image.csv",
        outputs=directory("results/{dataset}/{method}/{variant}/{run}/outputs"),
    params:
        spec=lambda wc: arg(wf.eval_spec(CFG, cell(wc))),
        checkpoint=lambda wc, input: f"--checkpoint {shlex.quote(input.checkpoint)}" if "checkpoint" in input.keys() else "",
        out=lambda wc, output: os.path.dirname(output.metrics),
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        "logs/evaluate/{dataset}/{method}/{variant}/{run}.log",
    shell:
        "LLBENCH_THREADS={threads} llbench evaluate --spec {params.spec} {params.checkpoint}"
        " --stamp {input.stamp:q} --out {params.out:q} > {log:q} 2>&1"
