"""A protocol file is plain data: anchors and aliases are refused (no alias bomb) and nesting is
bounded (no RecursionError), in the pure loader, on the amendment page and on the command line."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annulus.cli import main
from annulus.protocol import MAX_DEPTH, ProtocolError, default_protocol_path, parse_protocol
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("X-1.1")

BRACKETS = "a: " + "[" * 5000 + "]" * 5000  # 10 KB
BRACES = "a: " + "{x: " * 2500 + "1" + "}" * 2500


def alias_bomb() -> str:
    # nine levels of 750 aliases each: about 27 KB of anchors and aliases that would expand to
    # 750**9 strings
    lines = ['l0: &l0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 750) + "]")
    text = "\n".join(lines) + "\n"
    assert 25_000 < len(text) < 30_000
    return text


def shipped_with(extra: str) -> str:
    return default_protocol_path().read_text() + "\n" + extra + "\n"


@pytest.mark.parametrize("text, words", [
    (BRACKETS, f"nested more than {MAX_DEPTH} levels deep"),
    (BRACES, f"nested more than {MAX_DEPTH} levels deep"),
    (alias_bomb(), "anchors and aliases"),
    ("a: &x 1\nb: *x\n", "anchors and aliases"),
    ("base: &b {k: 1}\nc:\n  <<: *b\n", "anchors and aliases"),
])
def test_the_loader_refuses_deep_nesting_and_aliases(text, words):
    with pytest.raises(ProtocolError) as e:
        parse_protocol(text.encode())
    assert len(e.value.errors) == 1 and words in e.value.errors[0], e.value.errors
    assert e.value.errors[0].startswith(("line ", "(file)"))


def test_an_anchor_inside_a_real_protocol_names_its_line():
    text = default_protocol_path().read_text().replace("effective_date: 2022-04-04", "effective_date: &d 2022-04-04")
    with pytest.raises(ProtocolError) as e:
        parse_protocol(text)
    assert e.value.errors[0].startswith("line 6:")


def test_the_shipped_protocol_still_loads():
    assert parse_protocol(default_protocol_path().read_bytes()).version


@pytest.mark.parametrize("name, text", [("brackets.yaml", BRACKETS), ("bomb.yaml", alias_bomb()),
                                        ("deep-in-protocol.yaml", shipped_with("x: " + "[" * 3000 + "]" * 3000))])
def test_cli_validate_exits_2_with_one_line(tmp_path, capsys, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert main(["protocol", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("nested more than" in err[0] or "anchors and aliases" in err[0]), err


@pytest.mark.parametrize("name, text, words", [("brackets.yaml", BRACKETS, "nested more than"),
                                               ("bomb.yaml", alias_bomb(), "anchors and aliases")])
def test_the_amendment_page_refuses_the_file_and_loads_nothing(users, name, text, words):
    from annulus.trial.models import ProtocolVersion

    c = Client(enforce_csrf_checks=True)
    c.get("/accounts/login/")
    c.post("/accounts/login/", {"username": users["admin"].username, "password": TEST_PASSWORD,
                                "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    c.get("/protocol/upload/")
    before = ProtocolVersion.objects.count()
    r = c.post("/protocol/upload/", {"file": SimpleUploadedFile(name, text.encode()), "activate": "on",
                                     "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code == 400
    assert words in r.content.decode()
    assert ProtocolVersion.objects.count() == before
