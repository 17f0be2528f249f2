"""The ``annulus`` console script.

Each module in this package that defines ``register(subparsers)`` adds its own sub-commands,
so a new command is a new file, not an edit here. A command function returns the exit code.
Errors a user can cause raise ``CliError``: one line on stderr, exit 2 (or the code given).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


class CliError(Exception):
    """A user-facing error: printed as one line, never as a traceback."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def setup_django() -> None:
    """Configure Django for commands that use the database (pure-core commands never call it)."""
    import os

    import django
    from django.core.exceptions import ImproperlyConfigured

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annulus.site.settings")
    try:
        django.setup()
    except ImproperlyConfigured as exc:  # a missing or wrong setting: one line naming it
        raise CliError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


class _Parser(argparse.ArgumentParser):
    """An argument error is one line on stderr (no usage block) and exit 2. Sub-command parsers
    are of this class too (argparse makes them of the parent's class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Building the parser imports every command module: they import heavy libraries (Django,
    # NumPy, pandas, SciPy, ...) inside the command that needs them, never at module level, so
    # that --help and an argument error answer at once.
    parser = _Parser(prog="annulus", description="Annulus clinical-trial system")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = func(args)
    except CliError as exc:
        print(f"annulus {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
