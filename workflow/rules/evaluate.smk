# Every evaluation of lsnf.evaluation.registry, one rule each (eval_<name>), made from its definition
# there: adding an evaluation to the registry adds its rule, its outputs and its tables.
#
# Each evaluation job reads its resolved settings from a file that the local rule
# eval_settings writes (docs/protocols.md §9): its param is the settings' content, so a changed
# setting reruns exactly the evaluations it changes.


localrules:
    eval_settings,  # writes one small YAML file: not worth a cluster job
    track_evaluations,  # talks to the MLflow store from the host that runs the workflow


rule eval_settings:
    output:
        layout.eval_settings("{exp}", "{stem}"),
    log:
        job_log("eval_settings", "{exp}/{stem}"),
    params:
        text=lambda w: plan.evaluation_settings_text(config, w.exp, w.stem),
    shell:
        WRITE_TEXT


for _ev in EVALUATIONS.values():

    rule:
        name:
            f"eval_{_ev.name}"
        input:
            model=MODEL,
            settings=layout.eval_settings("{exp}", _ev.stem),
            reads=settings_inputs(_ev),
        output:
            **eval_outputs(_ev),
        log:
            job_log(f"eval_{_ev.name}", eval_job(_ev)),
        benchmark:
            job_benchmark(f"eval_{_ev.name}", eval_job(_ev))
        threads: config["threads"]["evaluate"]
        resources:
            **job_resources("evaluate"),
        params:
            name=_ev.name,
            out=eval_out_flags(_ev),
            run=eval_run_flags,
            device=config["device"],
        shell:
            "lsnf --threads {threads:q} eval {params.name:q} {input.model:q}"
            " --settings {input.settings:q} {params.out:q} --device {params.device:q}"
            " {params.run:q} > {log:q} 2>&1"


# Every evaluation's outputs into its model's MLflow run, in one job: evaluation jobs do not
# import MLflow or open its store, which cost each 2-5 s (docs/results.md, "Per-job fixed cost").
# Idempotent: rerun whenever an output, the store or the experiment changes.
rule track_evaluations:
    input:
        plan.evaluation_targets(config),
    output:
        layout.tracked_evaluations(),
    log:
        layout.log("track_evaluations", "all"),
    params:
        mlflow=mlflow_flags(),
        store=lambda w: [config["mlflow"]["tracking_uri"], config["mlflow"]["experiment"]],
    shell:
        "lsnf track evaluations {input:q} --out {output:q} {params.mlflow:q} > {log:q} 2>&1"
