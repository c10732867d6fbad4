# Unsupervised recovery (docs/protocols.md §5): a model trained on corrupted images only
# re-infers z for its training images; error on the hidden pixels ([0, 1] scale) and a grid.


rule eval_recovery:
    input:
        MODEL,
    output:
        result=result("recover.json"),
        examples=layout.examples(result("recover.json")),
        grid=report(
            result("recover.png"),
            caption="../report/recovery.rst",
            category="Recovery",
            subcategory="{exp}",
            labels={"model": "{run}"},
        ),
    log:
        job_log("eval_recovery"),
    benchmark:
        job_benchmark("eval_recovery")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        flags=eval_flags("recover"),
        run=run_flags,
        device=config["device"],
    shell:
        "lsnf --threads {threads} eval recover {input} --out {output.result} --grid {output.grid}"
        " {params.flags} --device {params.device} {params.run} > {log} 2>&1"
