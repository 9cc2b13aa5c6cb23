# Training, evaluation and the Figure 3 ablation: one job per run of params.yaml's grid.
# On a cluster the three are one job per run: the SLURM profile groups them (workflow/profiles/slurm).


rule train:
    # Resumable state lives in {RESULTS}/state/<run>, deliberately NOT a declared output: Snakemake deletes
    # declared outputs before a job starts, and a preempted or killed run must resume from its checkpoint.
    # The fingerprint param is the run's resolved config: changing it makes Snakemake rerun the job.
    # --keep-finished: a finished run's files are kept (hard links, {RESULTS}/state/<run>.finished) for the
    # retry of a run's cluster job whose evaluation or ablation failed: Snakemake then deletes every output
    # of the job and forces all of its steps again, and the retry restores the run instead of training it
    # again. Released when Snakemake starts and ends (release_finished, common.smk), so a rerun the user asks
    # for trains (rir/finished.py).
    input:
        prepared,
        CONFIGS["run"],
        CODE["train"],
    output:
        **{name.split(".")[0]: f"{RESULTS}/runs/{{run}}/{name}" for name in RUN_FILES},
    params:
        fingerprint=lambda w: ALL_RUNS[w.run].fingerprint(),
        profile=PROFILE,
        root=lambda w, input: data_root(input[0]),
        out=lambda w, output: os.path.dirname(output.metrics),
        state=lambda w, output: state_dir(output.metrics),
    log:
        f"{LOGS}/train/{{run}}.log",
    threads: THREADS
    resources:
        # A slot, leased by `rir train` itself (rir.gpu); Snakemake never picks the device. The `gpu` limit
        # defaults to the slots found on the box (common.smk), so no job waits for one holding cores.
        gpu=1,
        # Minutes, for a cluster job (SLURM's -t; a box ignores it): the run's estimate on the named card with
        # a margin, floor and ceiling, doubled on a retry (rir.timelimits; docs/cluster.md).
        runtime=runtime("train"),
    shell:
        "rir train --params params.yaml --profile {params.profile} --run {wildcards.run}"
        " --data-root {params.root} --out {params.out} --state-dir {params.state} --keep-finished"
        " --allow-diverged"
        " > {log} 2>&1"


rule evaluate:
    # Test accuracy recomputed from the saved model: proves model.pt is the model the metrics describe.
    input:
        prepared,
        model=f"{RESULTS}/runs/{{run}}/model.pt",
        metrics=f"{RESULTS}/runs/{{run}}/metrics.json",
        code=CODE["evaluate"],
    output:
        evaluation=evaluation_path(PROFILE, "{run}"),
        metrics=metrics_path(PROFILE, "{run}"),  # DVC's view (rir.dvcgen): an output here, not in DVC
    params:
        root=lambda w, input: data_root(input[0]),
        out=lambda w, input: os.path.dirname(input.model),
    log:
        f"{LOGS}/evaluate/{{run}}.log",
    threads: THREADS
    resources:
        gpu=1,
        runtime=runtime("evaluate"),
    shell:
        "rir evaluate {params.out} --data-root {params.root} --out {output.evaluation}"
        " --metrics-out {output.metrics} > {log} 2>&1"


rule ablate:
    # Figure 3: each stream's learned connections zeroed one ResNet Init layer at a time, both readings.
    input:
        prepared,
        model=f"{RESULTS}/runs/{{run}}/model.pt",
        code=CODE["ablate"],
    output:
        f"{RESULTS}/ablation/{{run}}.csv",
    params:
        root=lambda w, input: data_root(input[0]),
        out=lambda w, input: os.path.dirname(input.model),
    log:
        f"{LOGS}/ablate/{{run}}.log",
    threads: THREADS
    resources:
        gpu=1,
        runtime=runtime("ablate"),
    shell:
        "rir ablate {params.out} --data-root {params.root} --out {output} > {log} 2>&1"
