"""The one kind of error that the command line reports as a single line: bad input.

A :class:`UserError` says what is wrong with the user's config, data or files and how to fix
it; ``lsnf`` prints it as ``lsnf: error: ...`` and exits 2. Anything else is a bug in lsnf and
keeps its traceback. (:class:`lsnf.config.ConfigError` is the config's own user error: the
config module imports nothing from lsnf.)
"""

from __future__ import annotations

__all__ = ["MissingFileError", "UserError"]


class UserError(ValueError):
    """Bad input (config, data, files, options); the message names the problem and the fix."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the user provides (data, weights, checkpoint) is not there; the message says
    which file goes where."""
