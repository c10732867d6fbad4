# Anomaly AUPRC and AUROC on the held-out-digit test split (docs/protocols.md §2), and the
# per-example scores and labels.


rule eval_anomaly:
    input:
        MODEL,
    output:
        result=result("anomaly.json"),
        examples=layout.examples(result("anomaly.json")),
    log:
        job_log("eval_anomaly"),
    benchmark:
        job_benchmark("eval_anomaly")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        flags=eval_flags("anomaly"),
        run=run_flags,
        device=config["device"],
    shell:
        "lsnf --threads {threads} eval anomaly {input} --out {output.result} {params.flags}"
        " --device {params.device} {params.run} > {log} 2>&1"
