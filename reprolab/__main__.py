"""``python -m reprolab`` = the ``reprolab`` command (see :mod:`reprolab.cli`)."""

import sys

from reprolab.cli import main

sys.exit(main())
