# One training job per (experiment, prior, seed[, held-out digit | training mask]).
# Each validates its model on the validation split as it learns (docs/method.md §6.5); a
# generation model's validation KID uses its data's domain FID extractor, trained first.
#
# Reruns follow content, not file times: `run_config` writes each run's resolved config and is
# re-run only when that content changes (the content is its param; Snakemake's params trigger),
# so editing a key of a run config or of an experiment's `set:` reruns exactly the trainings it
# changes and their downstream jobs. Training reads the resolved file. The content is computed
# when the DAG is built and written by the shell: a `run:` job would start a Snakemake process
# of its own, 4-11 s each (docs/results.md, "The CPU reference").
# The run directory keeps checkpoint.pt across attempts, so a killed or failed job resumes from
# its last epoch (a checkpoint of an older config is discarded); model.pt appears only when
# every epoch is done, or as the record of a model that failed to train (a non-finite loss:
# --record-failure, docs/method.md §6.7), which its evaluations and the tables report as such.


localrules:
    run_config,  # writes one small YAML file: not worth a cluster job


rule run_config:
    output:
        RUN_CONFIG,
    log:
        job_log("run_config"),
    params:
        text=lambda w: plan.run_config_text(config, w.exp, w.run),
    shell:
        WRITE_TEXT


ruleorder: train_two_stage > train


rule train:
    input:
        config=RUN_CONFIG,
        data=data_manifest,
        extractor=lambda w: plan.validation_extractor(config, w.exp) or [],
    output:
        model=MODEL,
        curve=layout.curve("{exp}", "{run}"),
    log:
        job_log("train"),
    benchmark:
        job_benchmark("train")
    priority: 1  # trainings before evaluations: they are the DAG's long path (docs/results.md)
    threads: config["threads"]["train"]
    resources:
        **job_resources("train"),
    params:
        run=run_flags,
        out=layout.model_dir("{exp}", "{run}"),
        extractor=lambda w, input: option("--extractor", input.extractor),
    shell:
        "lsnf --threads {threads:q} train {input.config:q} --out {params.out:q}"
        " --restart-if-changed --record-failure {params.extractor:q} {params.run:q}"
        " > {log:q} 2>&1"


# 2s-ABP (docs/method.md §6.6): the ABP model of the same seed (and digit), then a flow fitted to
# its inferred training latents; evaluated like every other model.
rule train_two_stage:
    input:
        config=RUN_CONFIG,
        source=lambda w: layout.model(w.exp, plan.two_stage_source(config, w.exp, w.run)),
    output:
        model=MODEL,
        curve=layout.curve("{exp}", "{run}"),
    log:
        job_log("train_two_stage"),
    benchmark:
        job_benchmark("train_two_stage")
    wildcard_constraints:
        run=f"{TWO_STAGE}-.+",
    priority: 1
    threads: config["threads"]["train"]
    resources:
        **job_resources("train"),
    params:
        run=run_flags,
        out=layout.model_dir("{exp}", "{run}"),
    shell:
        "lsnf --threads {threads:q} fit-two-stage {input.config:q} --from {input.source:q}"
        " --out {params.out:q} --record-failure {params.run:q} > {log:q} 2>&1"
