"""Old spelling of `frugalthink check-conditioned`, kept so that existing scripts keep working."""

import sys

from frugalthink.cli import main

if __name__ == "__main__":
    print("note: scripts/conditioned_vs_separate.py is now `frugalthink check-conditioned`", file=sys.stderr)
    sys.exit(main(["check-conditioned", *sys.argv[1:]]))
