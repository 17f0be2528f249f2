"""`annulus demo` and `annulus serve` on a database filled from another copy of the shipped
protocol file under the same version number: one line saying what to do, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_on_a_database_holding_another_copy_of_version_1_0(tmp_path):
    db = tmp_path / "stale.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "DJANGO_SETTINGS_MODULE": "annulus.site.settings"}
    env.pop("ANNULUS_TEST_DB_NAME", None)
    setup = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from annulus.trial.models import ProtocolVersion\n"
        "ProtocolVersion.objects.create(version='1.0', registry_number='ChiCTR2200058291', digest='0' * 64,\n"
        "                               text='an earlier copy', effective_date='2022-04-04', active=True)\n"
    )
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, timeout=300)
    for command in (["demo", "--no-serve"], ["serve", "--port", "1"]):
        run = subprocess.run([sys.executable, "-c", "import sys; from annulus.cli import main; sys.exit(main())", *command], env=env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 2, (command, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "make clean-demo" in lines[0] and "already loaded" in lines[0], lines
