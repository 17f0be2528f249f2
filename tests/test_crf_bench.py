"""`annulus bench crf` runs end to end on a scratch SQLite file (figures are printed, never asserted)."""

import os
import subprocess
import sys


def test_bench_crf_prints_forms_per_second_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env["ANNULUS_VAR_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "annulus", "bench", "crf", "-n", "12"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("12 complete forms") == 2 and "forms/s" in out.stdout
    assert "eCRF per form" in out.stdout and "eCRF per visit" in out.stdout
    assert "pgbench: needs PostgreSQL" in out.stdout
    assert not list(tmp_path.iterdir())  # the trial's own database was never created


def test_bench_crf_bad_argument_is_one_line():
    out = subprocess.run([sys.executable, "-m", "annulus", "bench", "crf", "-n", "0"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--forms" in out.stderr
