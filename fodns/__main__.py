"""`python -m fodns` is the `fodns` command."""

import sys

from fodns.cli import main

sys.exit(main())
