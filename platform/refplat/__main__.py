"""``python -m refplat``: the same as the ``refplat`` console script."""

import sys

from refplat.cli import main

sys.exit(main())
