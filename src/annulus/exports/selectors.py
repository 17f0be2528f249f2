"""Reading export jobs and runs: whose a user may see and download."""

from __future__ import annotations

from annulus.accounts.permissions import has

from .models import ExportJob


def jobs_for(user, limit: int = 50) -> list[ExportJob]:
    """The user's own export jobs, newest first (the data manager: everyone's)."""
    if not has(user, "export.run"):
        return []
    qs = ExportJob.objects.select_related("user", "run").order_by("-id")
    if not has(user, "export.all_jobs"):
        qs = qs.filter(user=user)
    return list(qs[:limit])


def job_for(user, pk: int) -> ExportJob | None:
    """One job the user may see (None: no such job, or another user's)."""
    if not has(user, "export.run"):
        return None
    qs = ExportJob.objects.select_related("user", "run").filter(pk=pk)
    if not has(user, "export.all_jobs"):
        qs = qs.filter(user=user)
    return qs.first()


def may_download(user, job: ExportJob) -> bool:
    """A user downloads their own finished export. The data manager, who sees every job, downloads
    another user's only when it shows no more than the data manager may see: blinded (no group
    label, arm or drug code) and not identifiable."""
    from . import source

    if job is None or job.status != ExportJob.DONE or not job.zip_path or not has(user, "export.run"):
        return False
    if job.user_id == user.pk:
        return True
    run = job.run
    return (has(user, "export.all_jobs") and run is not None and run.blinding == "blinded" and not run.identifiable
            and not run.drug_codes and source.blinding_for(user) == "blinded")
