# Supervised inpainting (PAPER.md §5): a model trained on complete images fills each test
# mask by noise-free masked Langevin from prior samples; hole MSE/PSNR/SSIM and a grid.


rule eval_inpainting:
    input:
        "results/models/{exp}/{run}/model.pt",
    output:
        result="results/eval/{exp}/{run}/inpaint-{mask}.json",
        grid=report(
            "results/eval/{exp}/{run}/inpaint-{mask}.png",
            caption="../report/inpainting.rst",
            category="Inpainting",
            subcategory="{exp}",
            labels={"model": "{run}", "mask": "{mask}"},
        ),
    params:
        mask=mask_flags,
        steps=test_steps_flag,
        step_size=step_size_flag,
        n=n_test_flag,
        completions=lambda w: evaluation(w.exp, "completions") or 10,
        track=tracking,
        device=config["device"],
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=lambda w, attempt: plan.scaled_resource(config, "evaluate", "mem_mb", attempt),
        runtime=lambda w, attempt: plan.scaled_resource(config, "evaluate", "runtime", attempt),
    conda:
        "../envs/lsnf.yaml"
    log:
        "results/logs/eval_inpainting/{exp}/{run}-{mask}.log",
    benchmark:
        "results/benchmarks/eval_inpainting/{exp}/{run}-{mask}.tsv"
    shell:
        "lsnf --threads {threads} eval inpaint {input} --out {output.result} --grid {output.grid}"
        " {params.mask} --completions {params.completions} {params.steps} {params.step_size}"
        " {params.n} --device {params.device} {params.track} > {log} 2>&1"
