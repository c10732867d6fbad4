# Anomaly AUPRC on the held-out-digit test split (docs/protocols.md §2).


rule eval_anomaly:
    input:
        MODEL,
    output:
        f"{EVAL}/anomaly.json",
    params:
        flags=eval_flags("anomaly"),
        track=tracking,
        device=config["device"],
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    log:
        job_log("eval_anomaly"),
    benchmark:
        job_benchmark("eval_anomaly")
    shell:
        "lsnf --threads {threads} eval anomaly {input} --out {output} {params.flags}"
        " --device {params.device} {params.track} > {log} 2>&1"
