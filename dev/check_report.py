"""Check that a family report renders in headless Chromium with every figure loaded.

The report carries a tiny inline script that, on load, writes ``data-figures="LOADED/TOTAL"`` on <body> (an image
counts as loaded when the browser decoded it: ``complete && naturalWidth > 0``). This script opens the page in
headless Chromium, dumps the DOM after load and reads that attribute; it also saves a screenshot beside the report.

Usage: python dev/check_report.py runs/demo-tally/report.html      (needs Debian's `chromium`: apt-get install chromium)
Exit code 0 when every figure loaded.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    page = Path(sys.argv[1]).resolve()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
        dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
        shot = page.with_suffix(".png")
        subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r'data-figures="(\d+)/(\d+)"', dom)
    if not m:
        print("the report's load check did not run (no data-figures attribute in the rendered DOM)")
        return 1
    loaded, total = int(m.group(1)), int(m.group(2))
    print(f"{page}: {loaded}/{total} figures loaded in headless Chromium; screenshot {shot}")
    return 0 if loaded == total and total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
