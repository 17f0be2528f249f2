"""Background jobs (``annulus.jobs``), as exports and trial reports run them: a real thread started
when the request's transaction commits, its heartbeat and progress written while it runs, a
failure kept in one line, a job claimed once, a job whose process died shown as failed."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annulus import jobs
from annulus.errors import NotPermitted, RuleViolation
from annulus.exports.models import ExportJob

pytestmark = [pytest.mark.req("X-7.6"), pytest.mark.req("X-8.5")]

log = logging.getLogger("tests.jobs")


def _wait(pk: int, status: str, seconds: float = 20.0) -> ExportJob:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        job = ExportJob.objects.get(pk=pk)
        if job.status == status:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {pk} never became {status}: {ExportJob.objects.get(pk=pk).status}")


def test_a_job_runs_in_its_own_thread_after_commit_with_heartbeat_and_progress(committed_db, settings,
                                                                                django_user_model):
    settings.ANNULUS_EXPORT_JOBS_INLINE = False
    user = django_user_model.objects.create(username="jobs-owner")
    release = threading.Event()
    seen = {}

    def work(job, progress):
        seen["thread"] = threading.current_thread().name
        progress(0, 4)
        progress(4, 4)
        assert release.wait(10)
        ExportJob.objects.filter(pk=job.pk).update(status=jobs.DONE, finished_at=timezone.now())

    def runner(pk):
        jobs.execute(ExportJob, pk, work, heartbeat_seconds=0.05, log=log)

    job = jobs.queue(ExportJob, runner, name="test-job", user=user, format="csv")
    assert job.status == jobs.QUEUED  # the request returns at once; the thread does the work
    running = _wait(job.pk, jobs.RUNNING)
    first_beat = running.heartbeat_at
    time.sleep(0.3)
    running = ExportJob.objects.get(pk=job.pk)
    assert running.heartbeat_at > first_beat  # the heartbeat moves while the work waits
    assert (running.done, running.total) == (4, 4)
    assert jobs.effective_status(running, timedelta(seconds=5)) == jobs.RUNNING
    release.set()
    done = _wait(job.pk, jobs.DONE)
    assert seen["thread"] == f"test-job-{job.pk}" and done.error == ""


@pytest.mark.django_db
@pytest.mark.parametrize(("exc", "kept"), [
    (RuleViolation("as_of", "is in the future"), "as_of: is in the future"),
    (NotPermitted("export.run"), "not permitted for the role of the user who asked for it"),
    (OSError("disk full"), "OSError: disk full"),
])
def test_a_failure_is_kept_on_the_job_in_one_line(settings, django_user_model, exc, kept):
    settings.ANNULUS_EXPORT_JOBS_INLINE = True
    user = django_user_model.objects.create(username="jobs-owner")

    def work(job, progress):
        raise exc

    job = jobs.queue(ExportJob, lambda pk: jobs.execute(ExportJob, pk, work, heartbeat_seconds=1, log=log),
                     name="test-job", user=user, format="csv")
    assert job.status == jobs.FAILED and job.error == kept and job.finished_at is not None


@pytest.mark.django_db
def test_a_job_is_claimed_once(settings, django_user_model):
    settings.ANNULUS_EXPORT_JOBS_INLINE = True
    user = django_user_model.objects.create(username="jobs-owner")
    runs = []

    def work(job, progress):
        runs.append(job.pk)
        ExportJob.objects.filter(pk=job.pk).update(status=jobs.DONE)

    job = jobs.queue(ExportJob, lambda pk: jobs.execute(ExportJob, pk, work, heartbeat_seconds=1, log=log),
                     name="test-job", user=user, format="csv")
    jobs.execute(ExportJob, job.pk, work, heartbeat_seconds=1, log=log)  # a second thread on the same job
    assert runs == [job.pk] and ExportJob.objects.get(pk=job.pk).status == jobs.DONE


@pytest.mark.django_db
def test_progress_is_throttled_but_the_first_and_last_are_written(settings, django_user_model):
    settings.ANNULUS_EXPORT_JOBS_INLINE = True
    user = django_user_model.objects.create(username="jobs-owner")
    written = []

    def work(job, progress):
        for done in range(0, 1001):
            progress(done, 1000)
            written.append(ExportJob.objects.values_list("done", flat=True).get(pk=job.pk))

    jobs.queue(ExportJob, lambda pk: jobs.execute(ExportJob, pk, work, heartbeat_seconds=1, log=log),
               name="test-job", user=user, format="csv")
    assert written[0] == 0 and written[-1] == 1000
    assert len(set(written)) < 50  # a write at most every half second, not one per participant


@pytest.mark.django_db
def test_a_job_whose_heartbeat_stopped_shows_failed(django_user_model):
    user = django_user_model.objects.create(username="jobs-owner")
    now = timezone.now()
    stuck = ExportJob.objects.create(user=user, format="csv", status=jobs.RUNNING,
                                     heartbeat_at=now - timedelta(minutes=10))
    assert jobs.effective_status(stuck, timedelta(minutes=5), now) == jobs.FAILED
    row = jobs.row(stuck, timedelta(minutes=5), dict(ExportJob.STATUSES))
    assert row["stale"] and not row["active"] and row["css"] == "bad"
    assert jobs.effective_status(stuck, timedelta(minutes=15), now) == jobs.RUNNING
    finished = ExportJob.objects.create(user=user, format="csv", status=jobs.DONE, done=3, total=3,
                                        heartbeat_at=now - timedelta(days=1))
    assert jobs.effective_status(finished, timedelta(minutes=5), now) == jobs.DONE
    assert jobs.row(finished, timedelta(minutes=5), dict(ExportJob.STATUSES))["percent"] == 100
