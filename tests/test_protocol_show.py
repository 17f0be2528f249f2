"""``annulus protocol show FILE`` summarises either shipped protocol in its own terms: the cell
trial's dose recipes as before, the kit trial's ratio, sites, strata, kit product, procedures and
schedule (X-1.3). Every expected value is read from the YAML file itself, not from the loader."""

from __future__ import annotations

from math import prod

import pytest
import yaml

from annulus.cli import main
from annulus.protocol import default_protocol_path

FIRST = default_protocol_path()
KNEE = FIRST.parent / "knee-oa-drug.yaml"


def _raw(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _show(capsys, *argv) -> str:
    assert main(["protocol", "show", *argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def _section(out: str, title: str) -> list[str]:
    """The lines of one section: from its title to the next blank line."""
    start = out.index("\n" + title) + 1
    end = out.find("\n\n", start)
    return out[start:end if end != -1 else None].splitlines()


@pytest.mark.req("X-1.3")
def test_show_summarises_the_kit_trial(capsys):
    raw = _raw(KNEE)
    out = _show(capsys, str(KNEE))
    assert out.startswith(f"{raw['trial']['short_title']['en']}  [{raw['trial']['registry_number']}]")

    ratios = [a["ratio"] for a in raw["arms"]]
    ratio = ":".join(map(str, ratios))
    assert ratio == "2:1"
    ss = raw["sample_size"]
    # with unequal ratios per_arm is one ratio unit: 2 x 91 active, 91 placebo, 273 in all
    sizes = ", ".join(f"{a['id']} {ss['per_arm'] * a['ratio']}" for a in raw["arms"])
    assert sizes == "active 182, placebo 91" and 182 + 91 == ss["total"]
    assert f"Sample size: {ss['per_arm']} per ratio unit ({sizes}; ratio {ratio}), {ss['total']} in total" in out

    arms = _section(out, "Arms (")
    assert arms[0] == f"Arms (ratio {ratio}; dose score; kit contents):"
    for line, arm in zip(arms[1:], raw["arms"], strict=True):
        assert line.split()[:3] == [arm["id"], str(arm["ratio"]), f"{arm['dose_score']:g}"]
        assert arm["kit"]["en"] in line and arm["name"]["en"] in line
        assert line.endswith("(control)") == bool(arm.get("control"))
    # nothing of a cell product's recipe
    assert "x10^6" not in out and "saline" not in out and "HA mL" not in out

    product = raw["product"]
    kit = _section(out, "Product (kits)")
    assert kit[0] == f"Product (kits): {product['name']['en']}"
    assert (f"route {product['route']}; {product['units_per_kit']} units per kit, "
            f"{product['kit_days']} days per kit") in kit[1]
    assert product["storage"]["en"] in kit[2]
    c = product["compliance"]
    assert kit[3] == (f"  compliance: {c['units_per_day']:g} unit(s) a day, acceptable "
                      f"{c['min_percent']:g}-{c['max_percent']:g} %")
    checks = kit[5:]
    assert [line.split()[0] for line in checks] == [k["id"] for k in product["kit_checks"]]
    assert checks[-1].endswith("(at most 25 °C)")

    sites = _section(out, "Sites:")
    assert [line.split(None, 1) for line in sites[1:]] == [[s["id"], s["name"]["en"]] for s in raw["sites"]]

    strata = raw["randomisation"]["strata"]
    n_strata = prod(len(f["levels"]) for f in strata)
    assert n_strata == 6
    rand = _section(out, "Randomisation:")
    assert rand[0].startswith(f"Randomisation: stratified permuted blocks (block sizes 3, 6), {n_strata} strata "
                              f"of {ss['total']} random numbers each")
    assert rand[0].endswith("drug codes KNEE-XXXXXX")
    assert rand[1:] == ["  site     from site: 01, 02, 03", "  pain     from nrs_pain_screening: moderate, severe cut at 7"]

    procs = _section(out, "Procedures (")
    assert [line.split()[0] for line in procs[1:]] == [p["id"] for p in raw["procedures"]]
    assert procs[1].startswith("  first_dose      consent +14 d (-14/+14 d); investigator, pharmacist; "
                               "checks dispensing; the treatment")
    assert "kit_return      at its visits; pharmacist, coordinator; checks returns" in procs[3]

    visits = _section(out, "Visits (")
    assert [line.split()[0] for line in visits[1:]] == [v["id"] for v in raw["schedule"]["visits"]]
    # the longest visit id keeps a space before its anchor
    assert visits[1].startswith("  screening_visit consent +0 d")
    roles = _section(out, "Roles:")
    assert "  supply_manager UNBLINDED Clinical-supply manager (sponsor)" in roles


@pytest.mark.req("X-1.3")
def test_show_prints_the_kit_trial_in_chinese(capsys):
    raw = _raw(KNEE)
    out = _show(capsys, str(KNEE), "--language", "zh")
    assert raw["product"]["name"]["zh"] in out
    for arm in raw["arms"]:
        assert arm["kit"]["zh"] in out and arm["name"]["zh"] in out
    for site in raw["sites"]:
        assert site["name"]["zh"] in out


@pytest.mark.req("X-1.3")
def test_show_prints_the_cell_trial_as_before(capsys):
    raw = _raw(FIRST)
    out = _show(capsys, str(FIRST))
    assert out == _show(capsys)  # the default file is the first protocol
    ss = raw["sample_size"]
    assert f"Sample size: {ss['per_arm']} per arm, {ss['total']} in total (delta {ss['delta']}, SD {ss['sd']}" in out
    arms = _section(out, "Arms (")
    assert arms[0] == "Arms (ratio; cells/disc; cells + saline + HA mL):"
    for line, arm in zip(arms[1:], raw["arms"], strict=True):
        r = arm["recipe"]
        total = r["cell_suspension_ml"] + r["saline_ml"] + r["ha_hydrogel_ml"]
        assert line == (f"  {arm['id']:<8} {arm['ratio']}  {arm.get('cells_per_disc', 0) / 1e6:>5g}x10^6  "
                        f"{r['cell_suspension_ml']:g} + {r['saline_ml']:g} + {r['ha_hydrogel_ml']:g} = {total:g} mL  "
                        f"{arm['name']['en']}")
    visits = _section(out, "Visits (")
    assert visits[1].startswith(f"  {raw['schedule']['visits'][0]['id']:<12} ")
    # a single-site trial with one unstratified list and a cell product: none of the kit trial's sections
    for title in ("Product (kits)", "Sites:", "Randomisation:", "Procedures ("):
        assert "\n" + title not in out
