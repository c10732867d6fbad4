# Reconstruction MSE on the test split after test-time inference (PAPER.md §5), with a grid.


rule eval_reconstruction:
    input:
        "results/models/{exp}/{run}/model.pt",
    output:
        result="results/eval/{exp}/{run}/recon.json",
        grid=report(
            "results/eval/{exp}/{run}/recon.png",
            caption="../report/recon_grid.rst",
            category="Reconstructions",
            subcategory="{exp}",
            labels={"model": "{run}"},
        ),
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
        "results/logs/eval_reconstruction/{exp}/{run}.log",
    benchmark:
        "results/benchmarks/eval_reconstruction/{exp}/{run}.tsv"
    shell:
        "lsnf --threads {threads} eval recon {input} --out {output.result} --grid {output.grid}"
        " {params.steps} {params.n} --device {params.device} {params.track} > {log} 2>&1"
