"""Old spelling of `frugalthink check`, kept so that existing scripts keep working."""

import sys

from frugalthink.cli import main

if __name__ == "__main__":
    print("note: scripts/tradeoff_checks.py is now `frugalthink check`", file=sys.stderr)
    sys.exit(main(["check", *sys.argv[1:]]))
