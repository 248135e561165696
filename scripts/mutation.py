"""Mutation testing of the modules where a silent defect loses data (benchmarks/mutation.md).

    python scripts/mutation.py [--max-children 2] [--fresh]

Runs ``mutmut run`` with the settings of ``[tool.mutmut]`` in pyproject.toml (the planner,
files, the store and the job runner, against their unit tests), then prints the killed share
per module and the survivors. ``--fresh`` removes ``mutants/`` first: mutmut keeps earlier
verdicts, so do that after changing tests. Not run in CI: it takes about nine minutes on two cores.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys

KILLED = {"killed", "timeout"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="start again: remove mutants/ first")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree("mutants", ignore_errors=True)
    beside = os.path.join(os.path.dirname(sys.executable), "mutmut")  # `python -m mutmut` warns that it re-imports
    mutmut = [beside] if os.path.exists(beside) else [sys.executable, "-m", "mutmut"]
    subprocess.run([*mutmut, "run", "--max-children", str(args.max_children)], check=True)
    out = subprocess.run([*mutmut, "results", "--all", "true"], check=True, capture_output=True, text=True).stdout
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    survivors = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = re.split(r"\.x[_ǁ]", name)[0]
        counts[module][status in KILLED] += 1
        if status not in KILLED:
            survivors.append(f"{name}: {status}")
    print("\n".join(survivors))
    total = killed = 0
    for module, c in sorted(counts.items()):
        n = c[True] + c[False]
        total, killed = total + n, killed + c[True]
        print(f"{module:20} {c[True]:5}/{n:<5} {100 * c[True] / n:5.1f} % killed")
    print(f"{'total':20} {killed:5}/{total:<5} {100 * killed / max(total, 1):5.1f} % killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
