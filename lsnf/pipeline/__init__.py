"""The Snakemake workflow's planning: which models and evaluations an experiment needs, their run
keys, resources and checks, so the rules stay thin."""
