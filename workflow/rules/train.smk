# One training job per (experiment, prior, seed[, held-out digit | training mask]). The run
# directory keeps checkpoint.pt across attempts, so a killed or failed job resumes from its last
# epoch; model.pt appears only when every epoch is done.


rule train:
    input:
        data_manifest,
    output:
        model=MODEL,
        curve="results/models/{exp}/{run}/metrics.jsonl",
    params:
        run_config=run_config,
        sets=lambda w: set_flags(plan.train_overrides(config, w.exp, w.run)),
        track=tracking,
        out=lambda w: f"results/models/{w.exp}/{w.run}",
    threads: config["threads"]["train"]
    resources:
        **job_resources("train"),
    log:
        job_log("train"),
    benchmark:
        job_benchmark("train")
    shell:
        "lsnf --threads {threads} train {params.run_config} {params.sets} --out {params.out}"
        " {params.track} > {log} 2>&1"
