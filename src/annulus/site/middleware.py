"""Every error under /api/ is JSON in the API's one error shape, whoever produced it (the URL
resolver's 404, django-ninja's 405, a 500 page)."""

from __future__ import annotations

from django.http import JsonResponse

MESSAGES = {
    401: "authentication required",
    403: "not permitted",
    404: "not found",
    405: "method not allowed",
    500: "internal error; nothing was saved",
}


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            message = MESSAGES.get(response.status_code, getattr(response, "reason_phrase", "") or "error")
            converted = JsonResponse({"detail": [{"field": "", "message": message}]}, status=response.status_code)
            for header in ("Allow", "WWW-Authenticate"):
                if header in response:
                    converted[header] = response[header]
            return converted
        return response
