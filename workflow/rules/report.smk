# Aggregation and the report: tables (CSV/JSON under results/), figures, and one self-contained HTML page.


rule tables:
    input:
        expand(f"{RESULTS}/runs/{{run}}/{{name}}", run=sorted(RUNS), name=("metrics.json", "eval.json")),
        expand(f"{RESULTS}/ablation/{{run}}.csv", run=ABLATED),
    output:
        directory(f"{RESULTS}/tables"),
    params:
        profile=PROFILE,
    conda:
        "../envs/rir.yaml"
    log:
        f"{LOGS}/report/tables.log",
    shell:
        "rir report tables --params params.yaml --profile {params.profile} > {log} 2>&1"


rule figures:
    input:
        rules.tables.output,
        expand(f"{RESULTS}/runs/{{run}}/history.csv", run=sorted(RUNS)),
    output:
        directory(f"{REPORTS}/figures"),
    params:
        profile=PROFILE,
    conda:
        "../envs/rir.yaml"
    log:
        f"{LOGS}/report/figures.log",
    shell:
        "rir report figures --params params.yaml --profile {params.profile} > {log} 2>&1"


rule gridsearch_summary:
    # The optional grid search ranked by held-out accuracy (target: `snakemake gridsearch`).
    input:
        expand(f"{RESULTS}/runs/{{run}}/metrics.json", run=sorted(GRIDSEARCH_RUNS)),
    output:
        directory(GRIDSEARCH_SUMMARY),
    params:
        profile=PROFILE,
    conda:
        "../envs/rir.yaml"
    log:
        f"{LOGS}/report/gridsearch.log",
    shell:
        "rir report gridsearch --params params.yaml --profile {params.profile} > {log} 2>&1"


rule readings_summary:
    # The optional readings of RiR side by side (target: `snakemake readings`); runs shared with Table 3
    # are its runs, trained once.
    input:
        expand(f"{RESULTS}/runs/{{run}}/metrics.json", run=sorted(READINGS_RUNS)),
    output:
        directory(READINGS_SUMMARY),
    params:
        profile=PROFILE,
    conda:
        "../envs/rir.yaml"
    log:
        f"{LOGS}/report/readings.log",
    shell:
        "rir report readings --params params.yaml --profile {params.profile} > {log} 2>&1"


rule report:
    input:
        rules.tables.output,
        rules.figures.output,
        # Once `snakemake gridsearch` has run, the report shows its summary and is redone when it changes
        # (and a grid changed in params.yaml is trained first). Before, the grid search stays out of the DAG.
        [GRIDSEARCH_SUMMARY] if os.path.exists(f"{GRIDSEARCH_SUMMARY}/summary.json") else [],
        [READINGS_SUMMARY] if os.path.exists(f"{READINGS_SUMMARY}/summary.json") else [],
    output:
        f"{REPORTS}/index.html",
    params:
        profile=PROFILE,
    conda:
        "../envs/rir.yaml"
    log:
        f"{LOGS}/report/html.log",
    shell:
        "rir report html --params params.yaml --profile {params.profile} > {log} 2>&1"
