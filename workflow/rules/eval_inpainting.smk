# Supervised inpainting (docs/method.md §7.4): a model trained on complete images fills each
# test mask by noise-free masked Langevin from prior samples; hole MSE/PSNR/SSIM and a grid.


rule eval_inpainting:
    input:
        MODEL,
    output:
        result=result("inpaint-{mask}.json"),
        examples=layout.examples(result("inpaint-{mask}.json")),
        grid=report(
            result("inpaint-{mask}.png"),
            caption="../report/inpainting.rst",
            category="Inpainting",
            subcategory="{exp}",
            labels={"model": "{run}", "mask": "{mask}"},
        ),
    log:
        job_log("eval_inpainting", "{exp}/{run}/{mask}"),
    benchmark:
        job_benchmark("eval_inpainting", "{exp}/{run}/{mask}")
    threads: config["threads"]["evaluate"]
    resources:
        **job_resources("evaluate"),
    params:
        mask=mask_flags,
        flags=eval_flags("inpaint"),
        run=run_flags,
        device=config["device"],
    shell:
        "lsnf --threads {threads} eval inpaint {input} --out {output.result} --grid {output.grid}"
        " {params.mask} {params.flags} --device {params.device} {params.run} > {log} 2>&1"
