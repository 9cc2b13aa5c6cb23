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


rule report:
    input:
        rules.tables.output,
        rules.figures.output,
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
