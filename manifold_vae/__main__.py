"""``python -m manifold_vae``: the command-line interface (see :mod:`manifold_vae.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
