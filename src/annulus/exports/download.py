"""The zip of a finished export as an HTTP response, for the page and the API alike."""

from __future__ import annotations

from django.http import FileResponse, Http404

from . import selectors, services


def zip_response(user, job) -> FileResponse:
    """The job's zip for ``user``; 404 when there is no such job, it is not finished, it is another
    user's that this one may not download, or its file is gone. Records nothing."""
    if job is None or not selectors.may_download(user, job):
        raise Http404
    try:
        handle = open(job.zip_path, "rb")
    except OSError:
        raise Http404 from None
    return FileResponse(handle, as_attachment=True, filename=services.zip_name(job), content_type="application/zip")
