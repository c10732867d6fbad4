# Grids of ancestral samples, one per model.


rule sample_grid:
    input:
        MODEL,
    output:
        report(
            f"{EVAL}/samples.png",
            caption="../report/samples.rst",
            category="Samples",
            subcategory="{exp}",
            labels={"model": "{run}"},
        ),
    params:
        flags=eval_flags("samples"),
        track=tracking,
        device=config["device"],
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    log:
        job_log("sample_grid"),
    benchmark:
        job_benchmark("sample_grid")
    shell:
        "lsnf --threads {threads} eval samples {input} {params.flags} --device {params.device}"
        " --out {output} {params.track} > {log} 2>&1"
