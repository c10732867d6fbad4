"""The ``lsnf`` command: argument parsing (:mod:`lsnf.cli.main`) and the subcommands
(:mod:`lsnf.cli.commands`)."""
