"""The file of a finished trial report as an HTTP response, for the page and the API alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.http import FileResponse, Http404

from . import selectors

CONTENT_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def file_response(user, report) -> FileResponse:
    """The report's file for ``user``; 404 when there is no such report, it is not finished, it is
    another user's that this one may not download, or its file is gone or no longer the one that
    was built (its SHA-256 differs from the one recorded). Records nothing, as an export's download."""
    if report is None or not selectors.may_download(user, report):
        raise Http404
    try:
        handle = open(report.path, "rb")
    except OSError:
        raise Http404 from None
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    if digest.hexdigest() != report.sha256:
        handle.close()
        raise Http404
    handle.seek(0)
    from annulus.site.csp import stored_document

    return stored_document(FileResponse(handle, as_attachment=True, filename=Path(report.path).name,
                                        content_type=CONTENT_TYPES.get(report.format, "application/octet-stream")))
