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
        cells="results/tables/cells.csv",
        train_log="results/tables/train_log.csv",
    params:
        cells=lambda wc: arg([c.dir for c in CELLS.values()]),
    log:
        "logs/tables.log",
    shell:
        "llbench tables --cells {params.cells} --out results/tables > {log:q} 2>&1"


rule report:
    input:
        rules.tables.output,
        references=str(wf.REPO / "report" / "reference_numbers.yaml"),
        templates=sorted(str(p) for p in (wf.REPO / "report").rglob("*") if p.is_file()),
    output:
        "results/report/index.html",
    params:
        configfile=lambda wc: " ".join(["--configfile", *(shlex.quote(os.path.relpath(f)) for f in workflow.configfiles)])
        if workflow.configfiles
        else "",
    log:
        "logs/report.log",
    shell:
        "llbench report --tables results/tables --results results {params.configfile}"
        " --out {output:q} > {log:q} 2>&1"
