# One training job per (experiment, prior, seed[, held-out digit]).  The run directory keeps
# checkpoint.pt across attempts, so a killed or failed job resumes from its last epoch;
# model.pt appears only when every epoch is done.


rule train:
    input:
        data_manifest,
    output:
        model="results/models/{exp}/{run}/model.pt",
        curve="results/models/{exp}/{run}/metrics.jsonl",
    params:
        run_config=run_config,
        sets=lambda w: set_flags(plan.train_overrides(config, w.exp, w.run)),
        track=tracking,
        out=lambda w: f"results/models/{w.exp}/{w.run}",
    threads: config["threads"]["train"]
    resources:
        mem_mb=lambda w, attempt: plan.scaled_resource(config, "train", "mem_mb", attempt),
        runtime=lambda w, attempt: plan.scaled_resource(config, "train", "runtime", attempt),
        gpu=1 if config["device"].startswith("cuda") else 0,
    conda:
        "../envs/lsnf.yaml"
    log:
        "results/logs/train/{exp}/{run}.log",
    benchmark:
        "results/benchmarks/train/{exp}/{run}.tsv"
    shell:
        "lsnf --threads {threads} train {params.run_config} {params.sets} --out {params.out}"
        " {params.track} > {log} 2>&1"
