# Reconstruction MSE on the test split after test-time inference (docs/method.md §7.1), with a
# grid of originals beside their reconstructions.


rule eval_reconstruction:
    input:
        MODEL,
    output:
        result=result("recon.json"),
        examples=layout.examples(result("recon.json")),
        grid=report(
            result("recon.png"),
            caption="../report/recon_grid.rst",
            category="Reconstructions",
            subcategory="{exp}",
            labels={"model": "{run}"},
        ),
    log:
        job_log("eval_reconstruction"),
    benchmark:
        job_benchmark("eval_reconstruction")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        flags=eval_flags("recon"),
        run=run_flags,
        device=config["device"],
    shell:
        "lsnf --threads {threads} eval recon {input} --out {output.result} --grid {output.grid}"
        " {params.flags} --device {params.device} {params.run} > {log} 2>&1"
