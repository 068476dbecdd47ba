"""Run every benchmark module (``benchmarks/*_bench.py``) with its defaults: ``make bench``.

    python -m benchmarks.run [--only identity] [-- extra args for the module]

Each module prints its own figures; record them in docs/benchmarks.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import benchmarks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run only benchmarks whose name starts with this")
    args, rest = parser.parse_known_args(argv)
    rest = [a for a in rest if a != "--"]
    status = 0
    for module in sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.endswith("_bench")):
        if args.only and not any(module.startswith(o) for o in args.only):
            continue
        print(f"== {module}", flush=True)
        status |= importlib.import_module(f"benchmarks.{module}").main(rest) or 0
    return status


if __name__ == "__main__":
    sys.exit(main())
