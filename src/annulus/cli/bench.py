"""``annulus bench TARGET``: benchmarks that print figures (never timed tests).

Each module ``annulus.bench.<target>`` defines ``add_arguments(parser)`` and ``run(args) -> int``;
a new benchmark is a new module there.
"""

from __future__ import annotations

import importlib
import pkgutil

import annulus.bench as bench_pkg


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print its figures")
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    for info in sorted(pkgutil.iter_modules(bench_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"annulus.bench.{info.name}")
        doc = (module.__doc__ or "").strip().splitlines()
        sub = targets.add_parser(info.name, help=doc[0] if doc else info.name)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
