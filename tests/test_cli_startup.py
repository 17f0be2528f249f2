"""The command line answers at once: ``annulus --help`` and an argument error import no heavy
library (Django, NumPy, pandas, SciPy, statsmodels, matplotlib, WeasyPrint); each command imports
what it needs when it runs. An argument error is one line on stderr and exit 2."""

import json
import subprocess
import sys

import pytest

HEAVY = ["django", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "weasyprint", "pydantic"]

PROBE = """
import json, sys
from annulus.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = %r
print(json.dumps({"code": code, "loaded": sorted(m for m in heavy if m in sys.modules)}), file=sys.__stderr__)
"""


def _probe(*argv):
    r = subprocess.run([sys.executable, "-c", PROBE % HEAVY, *argv], capture_output=True, text=True, timeout=120)
    report = json.loads(r.stderr.strip().splitlines()[-1])
    return report, r


@pytest.mark.parametrize("argv", [
    ["--help"], ["samplesize", "--help"], ["mmrm", "--help"], ["bench", "pages", "--help"],
    ["samplesize", "--delta", "1"], ["power", "--bogus"], ["compare", "--data"], ["nosuch"],
    ["protocol", "validate"], ["randomisation", "generate", "--seed"],
])
def test_help_and_argument_errors_import_no_heavy_library(argv):
    report, _ = _probe(*argv)
    assert report["loaded"] == [], (argv, report)


@pytest.mark.parametrize("argv", [["samplesize", "--delta", "1"], ["power", "--bogus"], ["nosuch"],
                                  ["bench", "pages", "--subjects"]])
def test_argument_error_is_one_line_and_exit_2(argv):
    r = subprocess.run([sys.executable, "-m", "annulus", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "usage:" not in r.stderr, r.stderr
    assert r.stdout == ""


def test_power_defaults_are_the_protocols():
    from annulus.cli.power import PROTOCOL as shown
    from annulus.stats.power import PROTOCOL

    assert shown == PROTOCOL


def test_a_command_still_runs():
    r = subprocess.run([sys.executable, "-m", "annulus", "samplesize", "--delta", "10.6", "--sd", "10.27",
                        "--power", "0.9", "--dropout", "0.2", "--groups", "4", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"] == 100
