# FID of ancestral samples against the dataset's reference statistics (docs/method.md §7.3).


rule eval_fid:
    input:
        model=MODEL,
        stats=lambda w: fid_reference(plan.data_key(config, w.exp)),
        weights=lambda w: extractor_weights(plan.data_key(config, w.exp)),
    output:
        result=result("fid.json"),
        features=layout.examples(result("fid.json"), arrays=True),
    log:
        job_log("eval_fid"),
    benchmark:
        job_benchmark("eval_fid")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        extractor=config["fid"]["extractor"],
        n=config["fid"]["n_samples"],
        weights=lambda w, input: f"--weights {input.weights}" if input.weights else "",
        flags=eval_flags("fid"),
        run=run_flags,
        device=config["device"],
    shell:
        "lsnf --threads {threads} eval fid {input.model} --stats {input.stats}"
        " --extractor {params.extractor} {params.weights} --n {params.n} {params.flags}"
        f" {FID_DOWNLOAD}"
        " --device {params.device} --out {output.result} {params.run} > {log} 2>&1"
