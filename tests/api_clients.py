"""The two ways the API is used, as tests call it: a browser session (logged in, CSRF enforced,
the token from the cookie sent back in ``X-CSRFToken``) and a token client (``Authorization:
Bearer``, no session, CSRF enforcement left on so that a route needing a session would fail)."""

from __future__ import annotations

import json

from django.test import Client


class Session:
    def __init__(self, user):
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)
        self.client.get("/")
        self.token = self.client.cookies["csrftoken"].value

    def post(self, path, payload, csrf=True):
        extra = {"HTTP_X_CSRFTOKEN": self.token} if csrf else {}
        return self.client.post(path, json.dumps(payload), content_type="application/json", **extra)

    def get(self, path):
        return self.client.get(path)


class Token:
    def __init__(self, user, name: str = "api test"):
        from annulus.accounts.services import issue_token

        self.key = issue_token(user=user, name=name)
        self.client = Client(enforce_csrf_checks=True)

    def post(self, path, payload, csrf=True):
        return self.client.post(path, json.dumps(payload), content_type="application/json",
                                HTTP_AUTHORIZATION=f"Bearer {self.key}")

    def get(self, path):
        return self.client.get(path, HTTP_AUTHORIZATION=f"Bearer {self.key}")
