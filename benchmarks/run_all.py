"""Run every benchmark one after the other; each prints its table and saves JSON in results/.

Usage: ``python benchmarks/run_all.py [--quick] [NAME ...]`` (names like ``motion``, ``io``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("io", "realism", "motion", "neurons", "spines", "tracking", "stim", "pipeline")


def script_for(name: str) -> Path:
    return HERE / ("realism.py" if name == "realism" else f"bench_{name}.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "names", nargs="*", default=list(ORDER), help=f"benchmarks to run (default: {' '.join(ORDER)})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (each under about a minute)")
    args = parser.parse_args()
    failed = []
    for name in args.names:
        script = script_for(name)
        if not script.is_file():
            print(f"== {name}: no script {script.name}", file=sys.stderr)
            failed.append(name)
            continue
        print(f"\n== {name} ({script.name})", flush=True)
        start = time.time()
        code = subprocess.call([sys.executable, str(script), *(["--quick"] if args.quick else [])])
        print(f"== {name}: exit {code} in {time.time() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
