# Training, evaluation and the Figure 3 ablation of each run of params.yaml's grid.
# On a cluster (workflow/profiles/slurm) training is a job of its own, and a run's evaluation and ablation
# one more: a failed evaluation never costs a finished training.


rule train:
    # A run trains when its stamp is missing (rir.stages: its configuration, its model's options, its data,
    # and the code it executes changed) or its files are. Resumable state lives in {RESULTS}/state/<run>,
    # deliberately NOT a declared output: Snakemake deletes declared outputs before a job starts, and a
    # preempted or killed run must resume from its checkpoint.
    input:
        prepared,
        lambda w: ancient(stamp(w.run)),
    output:
        **{name.split(".")[0]: f"{RESULTS}/runs/{{run}}/{name}" for name in RUN_FILES},
    params:
        profile=PROFILE,
        root=lambda w, input: data_root(input[0]),
        out=lambda w, output: os.path.dirname(output.metrics),
        state=lambda w, output: state_dir(output.metrics),
    log:
        f"{LOGS}/train/{{run}}.log",
    threads: THREADS
    resources:
        # A slot, leased by `rir train` itself (rir.gpu); Snakemake never picks the device.
        gpu=1,
        # Minutes, for a cluster job (SLURM's -t; a box ignores it): the run's estimate on the named card with
        # a margin, floor and ceiling, doubled on a retry (rir.timelimits; docs/cluster.md).
        runtime=runtime("train"),
    # The console gets one line per training: its log's last line (the accuracy and time, or the error) and
    # where the log is; everything else stays in the log.
    shell:
        "s=0; rir train --params params.yaml --profile {params.profile} --run {wildcards.run}"
        " --data-root {params.root} --out {params.out} --state-dir {params.state} --allow-diverged"
        " > {log} 2>&1 || s=$?; echo \"$(tail -n 1 {log})  [{log}]\"; exit $s"


rule evaluate:
    # Test accuracy recomputed from the saved model: proves model.pt is the model the metrics describe.
    # The run's files count by its stamp (a retraining makes it anew, and this job with it), not by their
    # times: files that DVC or git put back are not evaluated again. The code counts by its time.
    input:
        prepared,
        model=ancient(f"{RESULTS}/runs/{{run}}/model.pt"),
        metrics=ancient(f"{RESULTS}/runs/{{run}}/metrics.json"),
        stamp=lambda w: ancient(stamp(w.run)),
        code=CODE["evaluate"],
    output:
        f"{RESULTS}/evaluations/{{run}}.json",
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
        "rir evaluate {params.out} --data-root {params.root} --out {output} > {log} 2>&1"


rule ablate:
    # Figure 3: each stream's learned connections zeroed one ResNet Init layer at a time, both readings.
    # After the run's evaluation, so that on a cluster the two are one job (the SLURM profile groups them).
    input:
        prepared,
        model=ancient(f"{RESULTS}/runs/{{run}}/model.pt"),
        evaluation=ancient(f"{RESULTS}/evaluations/{{run}}.json"),
        stamp=lambda w: ancient(stamp(w.run)),
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
