# Aggregation and the report: tables (CSV/JSON under results/), figures, and one self-contained HTML page.
# They read params.yaml (which runs make which table) and are quick, so any edit of it redoes them. Their runs
# are the default families' and those of every optional family of a user's that has run (REPORTED).


rule tables:
    input:
        expand(f"{RESULTS}/runs/{{run}}/metrics.json", run=sorted(REPORTED)),
        expand(f"{RESULTS}/evaluations/{{run}}.json", run=sorted(REPORTED)),
        expand(f"{RESULTS}/ablation/{{run}}.csv", run=ABLATED),
        "params.yaml",
        CODE["report"],
    output:
        directory(f"{RESULTS}/tables"),
        metrics=f"{RESULTS}/metrics.json",  # each run's test accuracy: DVC's metrics (`dvc exp show`)
    params:
        profile=PROFILE,
    log:
        f"{LOGS}/report/tables.log",
    shell:
        "rir report tables --params params.yaml --profile {params.profile} > {log} 2>&1"


rule figures:
    input:
        f"{RESULTS}/tables",
        expand(f"{RESULTS}/runs/{{run}}/history.csv", run=sorted(REPORTED)),
        "params.yaml",
        CODE["report"],
    output:
        directory(f"{REPORTS}/figures"),
    params:
        profile=PROFILE,
    log:
        f"{LOGS}/report/figures.log",
    shell:
        "rir report figures --params params.yaml --profile {params.profile} > {log} 2>&1"


rule gridsearch_summary:
    # The optional grid search ranked by held-out accuracy (target: `snakemake gridsearch`).
    input:
        expand(f"{RESULTS}/runs/{{run}}/metrics.json", run=sorted(GRIDSEARCH_RUNS)),
        "params.yaml",
        CODE["report"],
    output:
        directory(GRIDSEARCH_SUMMARY),
    params:
        profile=PROFILE,
    log:
        f"{LOGS}/report/gridsearch.log",
    shell:
        "rir report gridsearch --params params.yaml --profile {params.profile} > {log} 2>&1"


rule readings_summary:
    # The optional readings of RiR side by side (target: `snakemake readings`); runs shared with Table 3
    # are its runs, trained once.
    input:
        expand(f"{RESULTS}/runs/{{run}}/metrics.json", run=sorted(READINGS_RUNS)),
        "params.yaml",
        CODE["report"],
    output:
        directory(READINGS_SUMMARY),
    params:
        profile=PROFILE,
    log:
        f"{LOGS}/report/readings.log",
    shell:
        "rir report readings --params params.yaml --profile {params.profile} > {log} 2>&1"


rule report:
    input:
        f"{RESULTS}/tables",
        f"{REPORTS}/figures",
        "params.yaml",
        CODE["report"],  # the template and paper.yaml (rir/reference) among them
        # The one place where the DAG depends on what exists when the Snakefile is parsed, and why: the report
        # shows an optional family's summary once `snakemake gridsearch` (or `readings`) has made it, and is
        # redone when it changes (a grid changed in params.yaml is trained first); but the default target
        # must never train an optional family (README), so before that the summary stays out of the DAG.
        [GRIDSEARCH_SUMMARY] if os.path.exists(f"{GRIDSEARCH_SUMMARY}/summary.json") else [],
        [READINGS_SUMMARY] if os.path.exists(f"{READINGS_SUMMARY}/summary.json") else [],
    output:
        f"{REPORTS}/index.html",
    params:
        profile=PROFILE,
    log:
        f"{LOGS}/report/html.log",
    shell:
        "rir report html --params params.yaml --profile {params.profile} > {log} 2>&1"
