# Unsupervised recovery (PAPER.md §5): a model trained on corrupted images only re-infers z
# for its training images; error on the hidden pixels ([0, 1] scale) and a grid.


rule eval_recovery:
    input:
        "results/models/{exp}/{run}/model.pt",
    output:
        result="results/eval/{exp}/{run}/recover.json",
        grid=report(
            "results/eval/{exp}/{run}/recover.png",
            caption="../report/recovery.rst",
            category="Recovery",
            subcategory="{exp}",
            labels={"model": "{run}"},
        ),
    params:
        steps=test_steps_flag,
        step_size=step_size_flag,
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
        "results/logs/eval_recovery/{exp}/{run}.log",
    benchmark:
        "results/benchmarks/eval_recovery/{exp}/{run}.tsv"
    shell:
        "lsnf --threads {threads} eval recover {input} --out {output.result} --grid {output.grid}"
        " {params.steps} {params.step_size} {params.n} --device {params.device} {params.track}"
        " > {log} 2>&1"
