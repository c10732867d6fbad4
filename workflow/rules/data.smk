# Data preparation (download or check), the domain FID extractor, FID reference statistics and
# the model-free FID rows against that reference: the floor (real held-out images) and the
# noise row (uniform noise images).
# Each is per data identity ({data} = lsnf.config.DataConfig.key: the images an experiment's
# splits hold, docs/protocols.md §1), shared by the experiments on those images. prepare_data
# reruns when the resolved data config changes (its SHA-256 is a param); the others follow it.


rule prepare_data:
    output:
        layout.data_manifest("{data}"),
    log:
        job_log("prepare_data", "{data}"),
    params:
        digest=lambda w: plan.resolved_data_config(config, w.data).digest(),
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
    shell:
        "lsnf prepare-data {params.run_config:q} {params.sets:q} --out {output:q} > {log:q} 2>&1"


# trains on the CPU whatever the device (lsnf.metrics.domain_extractor): never holds a GPU
rule train_extractor:
    input:
        layout.data_manifest("{data}"),
    output:
        layout.extractor("{data}"),
    log:
        job_log("train_extractor", "{data}"),
    benchmark:
        job_benchmark("train_extractor", "{data}")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate", on_device=False),
    params:
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
        epochs=config["fid"]["extractor_epochs"],
    shell:
        "lsnf --threads {threads:q} train-extractor {params.run_config:q} {params.sets:q}"
        " --epochs {params.epochs:q} --out {output:q} > {log:q} 2>&1"


rule fid_reference:
    input:
        data=layout.data_manifest("{data}"),
        weights=lambda w: extractor_weights(w.data),
    output:
        layout.fid_reference("{data}", "{split}", "{extractor}"),
    log:
        job_log("fid_reference", "{data}-{split}-{extractor}"),
    benchmark:
        job_benchmark("fid_reference", "{data}-{split}-{extractor}")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
        n=option("--n", config["fid"]["reference_n"]),
        weights=lambda w, input: option("--weights", input.weights),
        download=FID_DOWNLOAD,
        device=config["device"],
    shell:
        "lsnf --threads {threads:q} fid-stats {params.run_config:q} {params.sets:q}"
        " --split {wildcards.split:q} {params.n:q} --extractor {wildcards.extractor:q}"
        " {params.weights:q} {params.download:q} --device {params.device:q} --out {output:q}"
        " > {log:q} 2>&1"


rule fid_floor:
    input:
        data=layout.data_manifest("{data}"),
        stats=layout.fid_reference("{data}", config["fid"]["reference_split"], "{extractor}"),
        weights=lambda w: extractor_weights(w.data),
    output:
        result=layout.fid_floor("{data}", "{extractor}", "{row}"),
        features=layout.examples(layout.fid_floor("{data}", "{extractor}", "{row}"), arrays=True),
    log:
        job_log("fid_floor", "{data}-{row}-{extractor}"),
    benchmark:
        job_benchmark("fid_floor", "{data}-{row}-{extractor}")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
        n=config["fid"]["n_samples"],
        weights=lambda w, input: option("--weights", input.weights),
        download=FID_DOWNLOAD,
        device=config["device"],
        split=lambda w: layout.FID_ROWS[w.row],
    shell:
        "lsnf --threads {threads:q} fid-floor {params.run_config:q} {params.sets:q}"
        " --split {params.split:q} --n {params.n:q} --stats {input.stats:q}"
        " --extractor {wildcards.extractor:q} {params.weights:q} {params.download:q}"
        " --device {params.device:q} --out {output.result:q} > {log:q} 2>&1"
