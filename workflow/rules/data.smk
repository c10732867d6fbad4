# Data preparation (download or check), the domain FID extractor, FID reference statistics and
# the FID floor (real held-out images against that reference).
# Each is per data identity ({data} = lsnf.config.DataConfig.key: the images an experiment's
# splits hold, docs/protocols.md §1), shared by the experiments on those images. prepare_data
# reruns when the resolved data config changes (its SHA-256 is a param); the others follow it.


rule prepare_data:
    output:
        "results/data/{data}.json",
    log:
        "results/logs/prepare_data/{data}.log",
    params:
        digest=lambda w: plan.resolved_data_config(config, w.data).digest(),
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
    shell:
        "lsnf prepare-data {params.run_config} {params.sets} --out {output} > {log} 2>&1"


rule train_extractor:
    input:
        "results/data/{data}.json",
    output:
        "results/extractors/{data}.pt",
    log:
        "results/logs/train_extractor/{data}.log",
    benchmark:
        "results/benchmarks/train_extractor/{data}.tsv"
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
        epochs=config["fid"]["extractor_epochs"],
    shell:
        "lsnf --threads {threads} train-extractor {params.run_config} {params.sets}"
        " --epochs {params.epochs} --out {output} > {log} 2>&1"


rule fid_reference:
    input:
        data="results/data/{data}.json",
        weights=lambda w: extractor_weights(w.data),
    output:
        "results/fid/{data}/{split}-{extractor}.npz",
    log:
        "results/logs/fid_reference/{data}-{split}-{extractor}.log",
    benchmark:
        "results/benchmarks/fid_reference/{data}-{split}-{extractor}.tsv"
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
        n=f"--n {config['fid']['reference_n']}" if config["fid"]["reference_n"] else "",
        weights=lambda w, input: f"--weights {input.weights}" if input.weights else "",
        device=config["device"],
    shell:
        "lsnf --threads {threads} fid-stats {params.run_config} {params.sets}"
        " --split {wildcards.split} {params.n} --extractor {wildcards.extractor} {params.weights}"
        f" {FID_DOWNLOAD}"
        " --device {params.device} --out {output} > {log} 2>&1"


rule fid_floor:
    input:
        data="results/data/{data}.json",
        stats=f"results/fid/{{data}}/{config['fid']['reference_split']}-{{extractor}}.npz",
        weights=lambda w: extractor_weights(w.data),
    output:
        result="results/fid/{data}/floor-{extractor}.json",
        features=examples_of("results/fid/{data}/floor-{extractor}.json", arrays=True),
    log:
        "results/logs/fid_floor/{data}-{extractor}.log",
    benchmark:
        "results/benchmarks/fid_floor/{data}-{extractor}.tsv"
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        run_config=lambda w: data_run_config(w.data),
        sets=lambda w: data_sets(w.data),
        n=config["fid"]["n_samples"],
        weights=lambda w, input: f"--weights {input.weights}" if input.weights else "",
        device=config["device"],
    shell:
        "lsnf --threads {threads} fid-floor {params.run_config} {params.sets} --split test"
        " --n {params.n} --stats {input.stats} --extractor {wildcards.extractor} {params.weights}"
        f" {FID_DOWNLOAD}"
        " --device {params.device} --out {output.result} > {log} 2>&1"
