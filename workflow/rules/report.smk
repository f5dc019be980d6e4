# Tables (pandas) and the HTML report (Jinja2 + matplotlib), from whatever results exist.


rule tables:
    input:
        metrics=metrics_files(),
        profiles=profile_files(),
    output:
        main="results/tables/main.csv",
        ablations="results/tables/ablations.csv",
        profile="results/tables/profile.csv",
        per_image="results/tables/per_image.csv",
    params:
        cells=lambda wc: arg([c.dir for c in CELLS.values()]),
    log:
        "logs/tables.log",
    shell:
        "{LLBENCH} tables --cells {params.cells} --out results/tables > {log} 2>&1"


rule report:
    input:
        rules.tables.output,
    output:
        "results/report/index.html",
    log:
        "logs/report.log",
    shell:
        "{LLBENCH} report --tables results/tables --out {output} > {log} 2>&1"
