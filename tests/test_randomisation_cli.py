"""``annulus randomisation generate|verify``."""

from __future__ import annotations

import json
import types
from collections import Counter
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.cli import randomisation as cli_randomisation

MINIMAL = """\
arms:
  - {id: high, ratio: 1}
  - {id: mid, ratio: 1}
  - {id: low, ratio: 1}
  - {id: control, ratio: 1}
sample_size: {total: 100}
randomisation: {block_sizes: [4, 8]}
"""


@pytest.fixture
def yaml_only(monkeypatch):
    """As if ``annulus.protocol`` had no loader: the command reads the YAML keys itself."""
    monkeypatch.setattr(cli_randomisation, "_protocol_loader", lambda: None)


def write(tmp_path: Path, text: str, name: str = "protocol.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.req("P-3.1", "P-3.3")
def test_generate_json(tmp_path, capsys, yaml_only):
    proto = write(tmp_path, MINIMAL)
    code, out, err = run(capsys, "randomisation", "generate", "--protocol", str(proto), "--seed", "2022", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["seed"] == 2022
    assert len(data["sequence"]) == 100
    assert data["sequence"][0]["random_number"] == "001"
    assert {"random_number", "group_label"} <= set(data["sequence"][0])
    assert sorted(data["label_to_arm"]) == ["A", "B", "C", "D"]
    counts = Counter(data["label_to_arm"][e["group_label"]] for e in data["sequence"])
    assert counts == {"high": 25, "mid": 25, "low": 25, "control": 25}
    assert set(data["block_sizes"]) <= {4, 8}
    # The list itself never names an arm.
    assert not any(arm in json.dumps(data["sequence"]) for arm in ("high", "mid", "low", "control"))


@pytest.mark.req("P-3.1")
def test_generate_json_is_reproducible(tmp_path, capsys, yaml_only):
    proto = write(tmp_path, MINIMAL)
    argv = ("randomisation", "generate", "--protocol", str(proto), "--seed", "77", "--json")
    _, first, _ = run(capsys, *argv)
    _, second, _ = run(capsys, *argv)
    assert first == second


@pytest.mark.req("P-3.6")
def test_generate_out_then_verify(tmp_path, capsys, yaml_only):
    proto = write(tmp_path, MINIMAL)
    out_dir = tmp_path / "docs"
    code, out, err = run(capsys, "randomisation", "generate", "--protocol", str(proto), "--seed", "5", "--out", str(out_dir))
    assert code == 0, err
    assert (out_dir / "allocation-table-pharmacy.csv.sha256").is_file()
    assert "seed: 5" in (out_dir / "README.txt").read_text()
    code, out, err = run(capsys, "randomisation", "verify", str(out_dir))
    assert code == 0 and out.startswith("OK")

    table = out_dir / "allocation-table-pharmacy.csv"
    data = bytearray(table.read_bytes())
    data[-2] = ord("A") if data[-2] != ord("A") else ord("B")
    table.write_bytes(bytes(data))
    code, out, err = run(capsys, "randomisation", "verify", str(out_dir))
    assert code == 1
    assert "allocation-table-pharmacy.csv" in err


@pytest.mark.req("P-3.6")
def test_generate_refuses_to_replace_documents(tmp_path, capsys, yaml_only):
    proto = write(tmp_path, MINIMAL)
    out_dir = tmp_path / "docs"
    argv = ("randomisation", "generate", "--protocol", str(proto), "--seed", "5", "--out", str(out_dir))
    assert run(capsys, *argv)[0] == 0
    before = (out_dir / "level2-key.csv").read_bytes()
    code, _, err = run(capsys, *argv[:-3], "6", "--out", str(out_dir))
    assert code == 2 and "never replaced" in err
    assert (out_dir / "level2-key.csv").read_bytes() == before


def one_line_error(capsys, *argv, field: str):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert field in err
    return err


@pytest.mark.req("P-3.1")
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, yaml_only):
    proto = write(tmp_path, MINIMAL)
    gen = ("randomisation", "generate")
    one_line_error(capsys, *gen, "--protocol", str(tmp_path / "nope.yaml"), "--seed", "1", "--json", field="no such file")
    one_line_error(capsys, *gen, "--protocol", str(proto), "--seed", "abc", "--json", field="--seed")
    one_line_error(capsys, *gen, "--protocol", str(proto), "--seed", "1.5", "--json", field="--seed")
    one_line_error(capsys, *gen, "--protocol", str(proto), "--seed", "-3", "--json", field="--seed")
    one_line_error(capsys, *gen, "--protocol", str(proto), "--seed", "1", field="--json")

    zero = write(tmp_path, MINIMAL.replace("{id: low, ratio: 1}", "{id: low, ratio: 0}"), "zero.yaml")
    one_line_error(capsys, *gen, "--protocol", str(zero), "--seed", "1", "--json", field="arms[2].ratio")

    odd = write(tmp_path, MINIMAL.replace("[4, 8]", "[4, 6]"), "odd.yaml")
    one_line_error(capsys, *gen, "--protocol", str(odd), "--seed", "1", "--json", field="randomisation.block_sizes")

    broken = write(tmp_path, "arms: [", "broken.yaml")
    one_line_error(capsys, *gen, "--protocol", str(broken), "--seed", "1", "--json", field="not valid YAML")

    one_line_error(capsys, "randomisation", "verify", str(tmp_path / "missing"), field="no such directory")


@pytest.mark.req("P-3.1")
def test_bad_input_writes_nothing(tmp_path, capsys, yaml_only):
    zero = write(tmp_path, MINIMAL.replace("{id: low, ratio: 1}", "{id: low, ratio: 0}"))
    out_dir = tmp_path / "docs"
    code, _, _ = run(capsys, "randomisation", "generate", "--protocol", str(zero), "--seed", "1", "--out", str(out_dir))
    assert code == 2
    assert not out_dir.exists()


@pytest.mark.req("P-3.1")
def test_uses_the_protocol_loader_when_present(tmp_path, capsys, monkeypatch):
    arm = lambda i, r: types.SimpleNamespace(id=i, ratio=r)  # noqa: E731
    model = types.SimpleNamespace(
        arms=[arm("a", 1), arm("b", 2)],
        sample_size=types.SimpleNamespace(total=12),
        randomisation=types.SimpleNamespace(block_sizes=[3, 6], case_number_width=4),
        trial=types.SimpleNamespace(id="demo", registry_number="X-1"),
        version="2.0",
    )
    monkeypatch.setattr(cli_randomisation, "_protocol_loader", lambda: lambda path: model)
    proto = write(tmp_path, "anything: here\n")
    code, out, err = run(capsys, "randomisation", "generate", "--protocol", str(proto), "--seed", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["sequence"][0]["random_number"] == "0001"
    assert Counter(data["label_to_arm"][e["group_label"]] for e in data["sequence"]) == {"a": 4, "b": 8}
    assert data["protocol"]["trial"] == "demo"


@pytest.mark.req("P-3.1")
def test_loader_rejection_is_one_line(tmp_path, capsys, monkeypatch):
    def reject(path):
        raise ValueError("arms[1].ratio: Input should be greater than 0\nsample_size.total: required")

    monkeypatch.setattr(cli_randomisation, "_protocol_loader", lambda: reject)
    proto = write(tmp_path, MINIMAL)
    err = one_line_error(
        capsys, "randomisation", "generate", "--protocol", str(proto), "--seed", "1", "--json", field="arms[1].ratio"
    )
    assert "1 more" in err


@pytest.mark.req("P-3.1")
def test_shipped_protocol_gives_25_per_arm(capsys):
    path = Path(__file__).resolve().parents[1] / "protocols" / "dlbp-admsc.yaml"
    if not path.is_file():
        pytest.skip("protocols/dlbp-admsc.yaml not present")
    code, out, err = run(capsys, "randomisation", "generate", "--protocol", str(path), "--seed", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["sequence"]) == 100
    assert Counter(data["label_to_arm"][e["group_label"]] for e in data["sequence"]) == {
        arm: 25 for arm in data["label_to_arm"].values()
    }
