# Grids of ancestral samples, one per model.


rule sample_grid:
    input:
        MODEL,
    output:
        report(
            result(plan.SAMPLES_GRID),
            caption="../report/samples.rst",
            category="Samples",
            subcategory="{exp}",
            labels={"model": "{run}"},
        ),
    log:
        job_log("sample_grid"),
    benchmark:
        job_benchmark("sample_grid")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        flags=eval_flags("samples"),
        run=run_flags,
        device=config["device"],
    shell:
        "lsnf --threads {threads} eval samples {input} {params.flags} --device {params.device}"
        " --out {output} {params.run} > {log} 2>&1"
