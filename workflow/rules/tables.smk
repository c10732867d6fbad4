# Aggregation: the comparison table (flow prior vs each baseline, paired intervals), the paper's
# tables (CSV, Markdown, LaTeX; measured rows with 95% intervals beside the published numbers of
# config/paper_reference.yaml and model-free floors), the cost table, and training curves.


rule tables:
    input:
        results=[p for p in plan.evaluation_targets(config) if p.endswith(".json")],
        floors=fid_floors(),
        curves=[
            f"results/models/{name}/{r.id}/metrics.jsonl"
            for name, exp in EXPERIMENTS.items()
            for r in plan.runs(exp)
        ],
        reference="config/paper_reference.yaml",
    output:
        tables=[
            (
                report(p, caption=f"../report/{table_caption(p)}.rst", category=table_category(p))
                if p.endswith(".csv")
                else p
            )
            for p in table_outputs()
        ],
        measurements="results/tables/measurements.csv",
    log:
        "results/logs/tables.log",
    params:
        versus=" ".join(f"--versus {a}:{b}" for a, b in config["versus"]),
    shell:
        "lsnf tables --reference {input.reference} --out-dir results/tables {input.results}"
        " --floors {input.floors} --results-dir results {params.versus} > {log} 2>&1"


rule test_steps_curve:
    input:
        lambda w: [f"results/eval/{w.exp}/{r.id}/recon.json" for r in plan.runs(EXPERIMENTS[w.exp])],
    output:
        report(
            "results/figures/{exp}_test_steps.png",
            caption="../report/test_steps.rst",
            category="Reconstruction vs K_test",
        ),
    log:
        "results/logs/test_steps_curve/{exp}.log",
    shell:
        "lsnf curves --out {output} {input} > {log} 2>&1"


rule curves:
    input:
        lambda w: [
            f"results/models/{w.exp}/{r.id}/metrics.jsonl" for r in plan.runs(EXPERIMENTS[w.exp])
        ],
    output:
        report(
            "results/figures/{exp}_curves.png",
            caption="../report/curves.rst",
            category="Training curves",
        ),
    log:
        "results/logs/curves/{exp}.log",
    shell:
        "lsnf curves --out {output} {input} > {log} 2>&1"
