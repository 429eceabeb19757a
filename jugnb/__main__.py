"""``python -m jugnb``: the same as the ``jugnb`` command."""

import sys

from .cli import main

sys.exit(main())
