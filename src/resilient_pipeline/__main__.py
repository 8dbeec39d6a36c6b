"""``python -m resilient_pipeline``: the command-line runner (see ``_cli``)."""

import sys

from resilient_pipeline._cli import main

if __name__ == "__main__":
    sys.exit(main())
