# Aggregation: the paper's tables (CSV, Markdown, LaTeX) with measured rows beside the
# published numbers of config/paper_reference.yaml, and training curves per experiment.


rule tables:
    input:
        results=[p for p in plan.evaluation_targets(config) if p.endswith(".json")],
        reference="config/paper_reference.yaml",
    output:
        tables=[
            report(p, caption="../report/tables.rst", category="Tables")
            if p.endswith(".csv")
            else p
            for p in table_outputs()
        ],
        measurements="results/tables/measurements.csv",
    log:
        "results/logs/tables.log",
    shell:
        "lsnf tables --reference {input.reference} --out-dir results/tables {input.results}"
        " > {log} 2>&1"


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
            f"results/models/{w.exp}/{r.id}/metrics.jsonl"
            for r in plan.runs(EXPERIMENTS[w.exp])
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
