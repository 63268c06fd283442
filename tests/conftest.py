"""The tests mirror the package (tests/<part>/test_*.py); their shared helpers (fixture_tokenizers, tiny_runs) sit here,
importable from every folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
