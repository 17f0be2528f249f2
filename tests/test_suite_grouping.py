"""The suite's own guard: under `--dist loadgroup` a grouped test whose node id lost its group tag
stops the run (tests/conftest.py), so that rows meant to be built once per group are not quietly
built on every worker."""

from types import SimpleNamespace

import pytest

from tests.conftest import pytest_collection_finish


def _item(nodeid: str, grouped: bool):
    return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: object() if grouped else None)


def _session(loadgroup: bool, *items):
    return SimpleNamespace(config=SimpleNamespace(option=SimpleNamespace(loadgroup=loadgroup)), items=list(items))


def test_a_grouped_test_without_its_tag_stops_the_run():
    lost = _session(True, _item("tests/test_a.py::test_one", grouped=True))
    with pytest.raises(pytest.UsageError, match="lost their group"):
        pytest_collection_finish(lost)


def test_tagged_or_ungrouped_tests_and_other_modes_pass():
    pytest_collection_finish(_session(True, _item("tests/test_a.py::test_one@tests.test_a", grouped=True),
                                      _item("tests/test_b.py::test_two", grouped=False)))
    pytest_collection_finish(_session(False, _item("tests/test_a.py::test_one", grouped=True)))
    pytest_collection_finish(SimpleNamespace(config=SimpleNamespace(option=SimpleNamespace()), items=[]))
