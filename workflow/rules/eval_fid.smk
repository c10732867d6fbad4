# FID of ancestral samples against the dataset's reference statistics (PAPER.md §5).


rule eval_fid:
    input:
        model="results/models/{exp}/{run}/model.pt",
        stats=lambda w: (
            f"results/fid/{plan.data_key(config, w.exp)}/{config['fid']['reference_split']}-"
            f"{config['fid']['extractor']}.npz"
        ),
        weights=lambda w: extractor_weights(plan.data_key(config, w.exp)),
    output:
        "results/eval/{exp}/{run}/fid.json",
    params:
        extractor=config["fid"]["extractor"],
        n=config["fid"]["n_samples"],
        weights=lambda w, input: f"--weights {input.weights}" if input.weights else "",
        track=tracking,
        device=config["device"],
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=lambda w, attempt: plan.scaled_resource(config, "evaluate", "mem_mb", attempt),
        runtime=lambda w, attempt: plan.scaled_resource(config, "evaluate", "runtime", attempt),
    conda:
        "../envs/lsnf.yaml"
    log:
        "results/logs/eval_fid/{exp}/{run}.log",
    benchmark:
        "results/benchmarks/eval_fid/{exp}/{run}.tsv"
    shell:
        "lsnf --threads {threads} eval fid {input.model} --stats {input.stats}"
        " --extractor {params.extractor} {params.weights} --n {params.n}"
        " --device {params.device} --out {output} {params.track} > {log} 2>&1"
