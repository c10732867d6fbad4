"""The ``lsnf`` command: :mod:`lsnf.cli.main` builds the parser and dispatches; each command
group is a module with its commands' options beside the functions that run them (training,
evaluation, fid, data, apply, analysis, tools), and the options several share are
:mod:`lsnf.cli.options`."""
