# Anomaly AUPRC on the held-out-digit test split (PAPER.md §5).


rule eval_anomaly:
    input:
        "results/models/{exp}/{run}/model.pt",
    output:
        "results/eval/{exp}/{run}/anomaly.json",
    params:
        steps=test_steps_flag,
        n=n_test_flag,
        track=tracking,
        device=config["device"],
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=lambda w, attempt: plan.scaled_resource(config, "evaluate", "mem_mb", attempt),
        runtime=lambda w, attempt: plan.scaled_resource(config, "evaluate", "runtime", attempt),
    conda:
        "../envs/lsnf.yaml"
    log:
        "results/logs/eval_anomaly/{exp}/{run}.log",
    benchmark:
        "results/benchmarks/eval_anomaly/{exp}/{run}.tsv"
    shell:
        "lsnf --threads {threads} eval anomaly {input} --out {output} {params.steps} {params.n}"
        " --device {params.device} {params.track} > {log} 2>&1"
