"""`python -m rir` runs the command line, exactly as the `rir` console script does."""

import sys

from rir.cli import main

sys.exit(main())
