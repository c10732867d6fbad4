# lsnf: train latent-space normalizing-flow prior models (LFBM) and their baselines (ABP, LEBM),
# evaluate them, and regenerate the paper's tables.  The only entry point.
#
#   snakemake --cores all                                  # embedded default (offline, CPU)
#   snakemake --cores all --configfile config/paper.yaml   # the paper's experiment matrix
#   snakemake --cores all --profile slurm                  # on a SLURM cluster
#   snakemake --report results/report.html                 # browsable report
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# The embedded default, unless --configfile names another config: that one then replaces it
# whole (Snakemake would otherwise merge the two, adding the default's experiments).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"


rule all:
    default_target: True
    input:
        all_targets(),
