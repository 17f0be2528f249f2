"""The export service (X-7.6): the files, their manifest and checksums, the one audit event, the
refusals (naming the field), exports after the database lock, background jobs."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.audit.selectors import decoded
from annulus.errors import NotPermitted, RuleViolation
from annulus.exports import services
from annulus.exports.models import ExportJob, ExportRun

pytestmark = pytest.mark.req("X-7.6")

FMT = "csv"


@pytest.fixture(autouse=True)
def _var(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ANNULUS_EXPORT_JOBS_INLINE = True


@pytest.fixture
def trial(users, make_participant):
    return [make_participant("enrolled"), make_participant("consented"), make_participant("screen_failed"),
            make_participant("pre_screened")]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_writes_files_manifest_and_one_audit_event(users, trial, tmp_path):
    out = tmp_path / "out"
    before = AuditEvent.objects.count()
    ticks = []
    run = services.run_export(actor=users["monitor"], fmt=FMT, out_dir=out, progress=lambda d, t: ticks.append((d, t)))
    # files: the writer's, the data dictionary, the manifest
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "manifest.json" in names and (services.DICTIONARY_CSV in names) == (FMT in services.WITH_DICTIONARY)
    assert len(names) >= 3
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == FMT
    assert manifest["stamp"]["blinding"] == "blinded" and manifest["stamp"]["created_by"] == "t_monitor"
    assert manifest["stamp"]["audit_chain_count"] == run.chain_count > 0
    assert manifest["stamp"]["audit_chain_hash"] == run.chain_hash
    assert manifest["scope"]["count"] == 3 == run.subjects  # consented, screen failure included; pre-screened not
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == set(names) - {"manifest.json"}
    for name, f in listed.items():
        assert f["sha256"] == _sha(out / name) and f["size"] == (out / name).stat().st_size
    # the run row lists every file, the manifest too, with checksums that match the files
    assert {f["name"] for f in run.files} == set(names)
    for f in run.files:
        assert f["sha256"] == _sha(out / f["name"])
    # one audit event, in the chain, naming who, what, the blind, the checksums, the as-of time and chain head
    assert AuditEvent.objects.count() == before + 1
    e = AuditEvent.objects.order_by("-id").first()
    assert (e.action, e.object_type, e.object_id, e.actor_username) == ("export", "export_run", str(run.pk), "t_monitor")
    ch = decoded(e)["changes"]
    assert ch["format"][1] == FMT and ch["blinding"][1] == "blinded" and ch["blinded"][1] is True
    assert ch["identifiable"][1] is False and ch["subjects"][1] == 3
    assert ch["as_of"][1] == manifest["stamp"]["as_of"]
    assert ch["audit_chain_hash"][1] == run.chain_hash and ch["audit_chain_count"][1] == run.chain_count
    for f in run.files:
        assert f"{f['name']} {f['size']} sha256:{f['sha256']}" in ch["files"][1]
    # the chain head at the as-of time is the one before the export's own event
    assert run.chain_count == before  # the chain as it stood at the as-of time, before this export's event
    assert ticks[0] == (0, 3) and ticks[-1] == (3, 3)


def test_the_dictionary_csv_has_a_bom_only_for_excel(users, trial, tmp_path):
    services.run_export(actor=users["coordinator"], fmt=FMT, out_dir=tmp_path / "plain")
    services.run_export(actor=users["coordinator"], fmt=FMT, out_dir=tmp_path / "excel", excel_bom=True)
    assert not (tmp_path / "plain" / services.DICTIONARY_CSV).read_bytes().startswith(b"\xef\xbb\xbf")
    assert (tmp_path / "excel" / services.DICTIONARY_CSV).read_bytes().startswith(b"\xef\xbb\xbf")


def _field(exc_info) -> set[str]:
    return {v.field for v in getattr(exc_info.value, "violations", [exc_info.value])}


def test_bad_requests_name_the_field_and_write_nothing(users, trial, tmp_path):
    before = (AuditEvent.objects.count(), ExportRun.objects.count())
    with pytest.raises(RuleViolation) as exc:
        services.run_export(actor=users["statistician"], fmt="xlsx", out_dir=tmp_path / "a")
    assert _field(exc) == {"format"} and "csv" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        services.run_export(actor=users["statistician"], fmt=FMT, out_dir=tmp_path / "b",
                            as_of=timezone.now() + timedelta(hours=2))
    assert _field(exc) == {"as_of"} and "future" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        services.run_export(actor=users["statistician"], fmt=FMT, out_dir=tmp_path / "c",
                            as_of=timezone.now() - timedelta(days=365 * 30))
    assert _field(exc) == {"as_of"} and "before the trial" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        services.run_export(actor=users["monitor"], fmt=FMT, out_dir=tmp_path / "d", identifiable=True)
    assert _field(exc) == {"identifiable"} and exc.value.status == 403
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    with pytest.raises(RuleViolation) as exc:
        services.run_export(actor=users["statistician"], fmt=FMT, out_dir=full)
    assert _field(exc) == {"out_dir"} and "not empty" in exc.value.message
    for role in ("designer", "dsmb", "ethics", "admin"):
        with pytest.raises(NotPermitted):
            services.run_export(actor=users[role], fmt=FMT, out_dir=tmp_path / role)
    assert (AuditEvent.objects.count(), ExportRun.objects.count()) == before
    assert not any((tmp_path / n).exists() and any((tmp_path / n).iterdir()) for n in ("a", "b", "c", "d"))


def test_force_overwrites_only_the_export_files(users, trial, tmp_path):
    out = tmp_path / "out"
    services.run_export(actor=users["statistician"], fmt=FMT, out_dir=out)
    (out / "notes.txt").write_text("mine")
    (out / "manifest.json").write_text("old")
    run = services.run_export(actor=users["statistician"], fmt=FMT, out_dir=out, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "manifest.json").read_text())["stamp"]["created_at"]
    assert {f["name"] for f in run.files} <= {p.name for p in out.iterdir()} | {
        p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.export-")]  # no staging left


def test_identifiable_export_for_the_investigator_is_audited_as_such(users, trial, tmp_path):
    run = services.run_export(actor=users["investigator"], fmt=FMT, out_dir=tmp_path / "id", identifiable=True)
    e = AuditEvent.objects.order_by("-id").first()
    assert run.identifiable and decoded(e)["changes"]["identifiable"][1] is True
    assert e.reason == "identifiable data export"


def test_an_empty_trial_gives_valid_empty_files(users, tmp_path):
    run = services.run_export(actor=users["data_manager"], fmt=FMT, out_dir=tmp_path / "empty")
    assert run.subjects == 0
    manifest = json.loads((tmp_path / "empty" / "manifest.json").read_text())
    assert manifest["scope"]["count"] == 0 and manifest["files"]
    for f in manifest["files"]:
        assert (tmp_path / "empty" / f["name"]).stat().st_size > 0  # at least a header


def test_exports_still_work_after_the_database_lock(users, trial, tmp_path):
    from annulus.trial.lock import ALLOWED_AFTER_LOCK, is_locked

    from .lock_support import sign_lock

    sign_lock(users)
    assert is_locked() and "exports" in ALLOWED_AFTER_LOCK
    run = services.run_export(actor=users["statistician"], fmt=FMT, out_dir=tmp_path / "locked")
    assert run.subjects == 3
    job = services.start_job(actor=users["statistician"], fmt=FMT)
    assert job.status == ExportJob.DONE


def test_as_of_reads_the_past_and_stamps_the_chain_then(users, make_participant, tmp_path):
    from annulus.participants.models import Consent

    make_participant("consented")
    late = make_participant("consented")
    Consent.objects.filter(participant=late).update(consented_at=timezone.now() - timedelta(days=1))
    cut = timezone.now() - timedelta(days=3)
    run = services.run_export(actor=users["monitor"], fmt=FMT, out_dir=tmp_path / "then", as_of=cut)
    assert run.subjects == 1
    assert run.chain_count == AuditEvent.objects.filter(timestamp__lte=cut).count()
    now = services.run_export(actor=users["monitor"], fmt=FMT, out_dir=tmp_path / "now")
    assert now.subjects == 2 and now.chain_count > run.chain_count
    assert json.loads((tmp_path / "then" / "manifest.json").read_text())["stamp"]["as_of"].startswith(
        cut.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M"))


def test_a_job_builds_a_zip_of_the_export(users, trial, settings):
    job = services.start_job(actor=users["coordinator"], fmt=FMT, excel_bom=True)
    assert job.status == ExportJob.DONE and job.run is not None
    assert job.done == job.total == 3
    with zipfile.ZipFile(job.zip_path) as zf:
        names = set(zf.namelist())
        assert {f["name"] for f in job.run.files} == names
        for f in job.run.files:
            assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
    assert job.run.origin == "page" and job.run.excel_bom


def test_a_failed_job_keeps_its_error_and_a_dead_one_shows_failed(users, trial, monkeypatch):
    def broken(subjects, ctx, out_dir):
        raise OSError("disk full")

    monkeypatch.setattr("annulus.interchange.writer", lambda fmt: broken)
    job = services.start_job(actor=users["coordinator"], fmt=FMT)
    assert job.status == ExportJob.FAILED and "disk full" in job.error and job.run is None
    assert not ExportRun.objects.exists()
    stuck = ExportJob.objects.create(user=users["coordinator"], format=FMT, status=ExportJob.RUNNING,
                                     heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert services.effective_status(stuck) == ExportJob.FAILED
    stuck.heartbeat_at = timezone.now()
    assert services.effective_status(stuck) == ExportJob.RUNNING


def test_a_job_refuses_bad_input_before_it_is_queued(users, trial):
    with pytest.raises(RuleViolation) as exc:
        services.start_job(actor=users["coordinator"], fmt="pdf")
    assert _field(exc) == {"format"}
    with pytest.raises(NotPermitted):
        services.start_job(actor=users["ethics"], fmt=FMT)
    assert not ExportJob.objects.exists()
