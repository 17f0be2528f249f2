"""Browser-like clients for the account tests: CSRF enforced, the token read from the cookie and
posted back as a browser form does, each client at its own address (``REMOTE_ADDR``)."""

from __future__ import annotations

from django.test import Client


def browser(ip: str = "192.0.2.10", user=None) -> Client:
    c = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)
    if user is not None:
        c.force_login(user)
    return c


def post_form(c: Client, path: str, data: dict):
    """GET the page (sets the CSRF cookie), then POST the form with the token, as a browser does."""
    c.get(path)
    return c.post(path, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


def login(c: Client, username: str, password: str):
    return post_form(c, "/accounts/login/", {"username": username, "password": password})


def logged_in(c: Client) -> bool:
    return "_auth_user_id" in c.session
