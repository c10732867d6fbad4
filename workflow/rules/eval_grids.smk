# Grids of ancestral samples, one per model.


rule sample_grid:
    input:
        "results/models/{exp}/{run}/model.pt",
    output:
        report(
            "results/eval/{exp}/{run}/samples.png",
            caption="../report/samples.rst",
            category="Samples",
            subcategory="{exp}",
            labels={"model": "{run}"},
        ),
    params:
        n=lambda w: evaluation(w.exp, "grid_samples") or 100,
        track=tracking,
        device=config["device"],
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=lambda w, attempt: plan.scaled_resource(config, "evaluate", "mem_mb", attempt),
        runtime=lambda w, attempt: plan.scaled_resource(config, "evaluate", "runtime", attempt),
    conda:
        "../envs/lsnf.yaml"
    log:
        "results/logs/sample_grid/{exp}/{run}.log",
    benchmark:
        "results/benchmarks/sample_grid/{exp}/{run}.tsv"
    shell:
        "lsnf --threads {threads} eval samples {input} --n {params.n} --device {params.device}"
        " --out {output} {params.track} > {log} 2>&1"
