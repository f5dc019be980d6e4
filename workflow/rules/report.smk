# Tables (pandas) and the HTML report (Jinja2 + matplotlib), from whatever results exist.


rule tables:
    input:
        metrics=metrics_files(),
        profiles=profile_files(),
    output:
        **{name: f"{layout.TABLES}/{name}.csv" for name in TABLES},
        records=f"{layout.TABLES}/{RECORDS}",
    params:
        cells=lambda wc: arg([c.record() for c in CELLS.values()]),
    log:
        "logs/tables.log",
    shell:
        f"llbench tables --cells {{params.cells}} --out {layout.TABLES} > {{log:q}} 2>&1"


rule grid:
    input:
        unpack(grid_inputs),
    output:
        directory(layout.grid_dir("{dataset}")),
    params:
        spec=lambda wc: arg(grid_spec(wc.dataset)),
    log:
        layout.grid_log("{dataset}"),
    shell:
        "llbench grid --spec {params.spec} --out {output:q} > {log:q} 2>&1"


rule report:
    input:
        rules.tables.output,
        grids=grid_dirs(),
        references=str(wf.REPO / "report" / "reference_numbers.yaml"),
        templates=sorted(str(p) for p in (wf.REPO / "report").rglob("*") if p.is_file()),
    output:
        layout.REPORT,
    params:
        configfile=lambda wc: shlex.join(["--configfile", *configfile_args()]) if workflow.configfiles else "",
    log:
        "logs/report.log",
    shell:
        f"llbench report --tables {layout.TABLES} --results {layout.RESULTS} {{params.configfile}}"
        " --out {output:q} > {log:q} 2>&1"
