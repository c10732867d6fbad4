# Aggregation: the comparison table (flow prior vs each baseline, paired intervals), the paper's
# tables (CSV, Markdown, LaTeX; measured rows with 95% intervals beside the published numbers of
# config/paper_reference.yaml and model-free floors), the cost table, the comparison's forest
# plot, and training curves.
# The tables are written all or none (lsnf.io.atomic_folder) and flagged update(): Snakemake
# neither deletes them before the job nor after a failed one, so a result that the tables refuse
# leaves the last complete tables in place (Snakemake restores its backup of them).


rule tables:
    input:
        results=[p for p in plan.evaluation_targets(config) if p.endswith(".json")],
        courses=[
            layout.course_index(p) for p in plan.evaluation_targets(config) if p.endswith(".json")
        ],
        floors=plan.fid_floors(config),
        curves=[
            layout.curve(name, r.id) for name, exp in EXPERIMENTS.items() for r in plan.runs(exp)
        ],
        reference=SHIPPED_REFERENCE,
    output:
        tables=[
            (
                report(
                    update(p),
                    caption=f"../report/{table_caption(p)}.rst",
                    category=table_category(p),
                )
                if p.endswith(".csv")
                else update(p)
            )
            for p in table_outputs()
        ],
        measurements=update(layout.table("measurements", "csv")),
        forest=report(
            update(layout.forest_figure()),
            caption="../report/forest.rst",
            category="1. Comparison",
        ),
        courses=[
            report(
                update(layout.course_figure(exp)),
                caption="../report/course_figure.rst",
                category="1. Comparison",
                labels={"experiment": exp},
            )
            for exp in EXPERIMENTS
        ],
    log:
        layout.log("tables", "tables"),
    params:
        versus=[arg for a, b in config["versus"] for arg in option("--versus", f"{a}:{b}")],
        min_seeds=option("--min-seeds", config["min_seeds"]),
        tables=lambda w, output: os.path.dirname(output.measurements),
        results=lambda w: layout.ROOT,
    shell:
        "lsnf tables --reference {input.reference:q} --out-dir {params.tables:q}"
        " {input.results:q} --floors {input.floors:q} --results-dir {params.results:q}"
        " {params.versus:q} {params.min_seeds:q} > {log:q} 2>&1"


rule test_steps_curve:
    input:
        lambda w: [
            layout.result(w.exp, r.id, f"{EVALUATIONS['reconstruction'].stem}.json")
            for r in plan.runs(EXPERIMENTS[w.exp])
        ],
    output:
        report(
            layout.test_steps_figure("{exp}"),
            caption="../report/test_steps.rst",
            category="Reconstruction vs K_test",
        ),
    log:
        job_log("test_steps_curve", "{exp}"),
    shell:
        "lsnf curves --out {output:q} {input:q} > {log:q} 2>&1"


rule curves:
    input:
        lambda w: [layout.curve(w.exp, r.id) for r in plan.runs(EXPERIMENTS[w.exp])],
    output:
        report(
            layout.curves_figure("{exp}"),
            caption="../report/curves.rst",
            category="Training curves",
        ),
    log:
        job_log("curves", "{exp}"),
    shell:
        "lsnf curves --out {output:q} {input:q} > {log:q} 2>&1"
