# Evaluation of one cell at native resolution (DESIGN.md ▶ Metrics protocol).


def eval_inputs(wc):
    c = cell(wc)
    inputs = {"stamp": stamp(c.dataset)}
    if c.checkpoint is not None:
        inputs["checkpoint"] = c.checkpoint
    elif c.train_dir is not None:
        inputs["checkpoint"] = f"{c.train_dir}/checkpoint.pt"
    return inputs


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        metrics="results/{dataset}/{method}/{variant}/{run}/metrics.json",
        per_image="results/{dataset}/{method}/{variant}/{run}/per_image.csv",
        outputs=directory("results/{dataset}/{method}/{variant}/{run}/outputs"),
    params:
        spec=lambda wc: arg(wf.eval_spec(CFG, cell(wc))),
        checkpoint=lambda wc, input: f"--checkpoint {input.checkpoint}" if "checkpoint" in input.keys() else "",
    threads: CFG["threads"]
    resources:
        gpu=1,
    log:
        "logs/evaluate/{dataset}/{method}/{variant}/{run}.log",
    shell:
        "LLBENCH_THREADS={threads} {LLBENCH} evaluate --spec {params.spec} {params.checkpoint} --out $(dirname {output.metrics}) > {log} 2>&1"
