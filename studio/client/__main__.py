"""``python -m studio.client``: the same as the `studio` command."""

from __future__ import annotations

import sys

from studio.client.cli import main

if __name__ == "__main__":
    sys.exit(main())
