"""``python -m lsnf.cli``: the ``lsnf`` command."""

import sys

from lsnf.cli.main import main

sys.exit(main())
