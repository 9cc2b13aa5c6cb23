# Data: the official CIFAR tarballs (paper profile) or synthetic ones in the same format (smoke profile),
# verified by checksum and prepared once into uint8 arrays. Both rules depend on the dataset's stamp (its
# settings and the code that makes it, rir.stages), never on a file's time.


rule synth:
    # Smoke profile only: a synthetic tarball in the official layout, with an md5 sidecar.
    input:
        lambda w: ancient(data_stamp_file(w.dataset)),
    output:
        tarball=f"{DATA}/synthetic/{{dataset}}.tar.gz",
        md5=f"{DATA}/synthetic/{{dataset}}.tar.gz.md5",
    params:  # the dataset's settings as its stamp holds them (rir.config.data_settings decides the defaults)
        n_train=lambda w: DATA_STAMPS[w.dataset]["n_train"],
        n_test=lambda w: DATA_STAMPS[w.dataset]["n_test"],
        seed=lambda w: DATA_STAMPS[w.dataset]["seed"],
    log:
        f"{LOGS}/synth/{{dataset}}.log",
    shell:
        "rir synth --dataset {wildcards.dataset} --out {output.tarball} --n-train {params.n_train}"
        " --n-test {params.n_test} --seed {params.seed} > {log} 2>&1"


rule fetch:
    # Download (paper) or take the synthetic tarball (smoke), verify its md5, unpack safely, prepare arrays.
    input:
        lambda w: [ancient(f"{DATA}/synthetic/{w.dataset}.tar.gz")] if SYNTHETIC else [],
        lambda w: ancient(data_stamp_file(w.dataset)),
    output:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
        arrays=f"{DATA}/{{dataset}}/prepared.npz",
    params:
        root=lambda w, output: data_root(output.manifest),
        source=lambda w, input: f"--from {input[0]}" if SYNTHETIC else "",
    log:
        f"{LOGS}/fetch/{{dataset}}.log",
    shell:
        "rir fetch --dataset {wildcards.dataset} --root {params.root} {params.source} > {log} 2>&1"
