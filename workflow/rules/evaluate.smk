# Evaluation of one cell at native resolution (DESIGN.md ▶ Metrics protocol).


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        metrics=f"{CELL}/metrics.json",
        per_image=f"{CELL}/per_image.csv",
        outputs=directory(f"{CELL}/outputs"),
    params:
        spec=lambda wc: arg(wf.eval_spec(CFG, cell(wc))),
        checkpoint=lambda wc, input: f"--checkpoint {shlex.quote(input.checkpoint)}" if "checkpoint" in input.keys() else "",
        out=lambda wc, output: os.path.dirname(output.metrics),
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        layout.eval_log("{dataset}", "{method}", "{variant}", "{run}"),
    shell:
        "LLBENCH_THREADS={threads} llbench evaluate --spec {params.spec} {params.checkpoint}"
        " --stamp {input.stamp:q} --out {params.out:q} > {log:q} 2>&1"
