"""Point 8 of issue 12: bad input exits 2 naming the file, line or field, before any request."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from loadbench.errors import ConfigError
from tests.conftest import run_loadbench
from tests.eval.conftest import label_dataset, pricing_file, write_suite

pytestmark = pytest.mark.slow


@pytest.fixture
def mock(mock_factory):  # one real target: it must see no request from a rejected eval
    return mock_factory()


def requests_seen(server) -> int:
    with urllib.request.urlopen(server.url + "/mock/stats", timeout=5) as resp:
        return int(json.load(resp)["requests"])


def _eval(suite: Path) -> tuple[int, str]:
    proc = run_loadbench("eval", str(suite), "--out", str(suite.parent / "out"))
    return proc.returncode, proc.stderr


def test_an_unknown_criterion_names_the_suite_line_and_field(tmp_path: Path, mock) -> None:
    data = label_dataset(tmp_path / "d.jsonl", 3)
    suite = write_suite(tmp_path, data, [{"name": "a", "url": mock.base_url, "model": "m"}],
                        criteria=[{"name": "label", "type": "classification"}, {"name": "x", "type": "exactly"}])
    rc, err = _eval(suite)
    assert rc == 2
    line = next(i for i, t in enumerate(suite.read_text().splitlines(), 1) if "exactly" in t)
    assert f"{suite}: line {line}: criteria[1].type: 'exactly' is not allowed" in err
    assert "'exact'" in err  # the fix lists the allowed types
    assert requests_seen(mock) == 0


def test_a_case_without_the_ground_truth_its_criterion_needs(tmp_path: Path, mock) -> None:
    data = label_dataset(tmp_path / "d.jsonl", 3)
    lines = data.read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["label"]
    lines[1] = json.dumps(broken)
    data.write_text("\n".join(lines) + "\n")
    rc, err = _eval(write_suite(tmp_path, data, [{"name": "a", "url": mock.base_url, "model": "m"}]))
    assert rc == 2
    assert f"{data}: line 2: label: case 'c001' has no 'label', which criterion 'label' (classification) needs" in err
    assert requests_seen(mock) == 0


def test_a_pricing_file_missing_a_model(tmp_path: Path, mock) -> None:
    data = label_dataset(tmp_path / "d.jsonl", 3)
    prices = pricing_file(tmp_path, {"other": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}})
    rc, err = _eval(write_suite(tmp_path, data, [{"name": "a", "url": mock.base_url, "model": "m"}],
                                pricing="pricing.yaml"))
    assert rc == 2
    assert f"{prices}: models.m: no price for 'm' (needed by target 'a'" in err
    assert "add `m: {input_per_mtok: ..., output_per_mtok: ...}`" in err
    assert requests_seen(mock) == 0


def test_a_dataset_that_does_not_parse(tmp_path: Path, mock) -> None:
    data = label_dataset(tmp_path / "d.jsonl", 3)
    data.write_text(data.read_text() + '{"id": "c9", "messages": [}\n')
    rc, err = _eval(write_suite(tmp_path, data, [{"name": "a", "url": mock.base_url, "model": "m"}]))
    assert rc == 2
    assert f"{data}: line 4: (line): is not valid JSON" in err
    assert requests_seen(mock) == 0


def test_code_tests_need_explicit_permission(tmp_path: Path, mock) -> None:
    data = tmp_path / "code.jsonl"
    data.write_text(json.dumps({"id": "k1", "prompt": "write f", "tests": "assert f() == 1"}) + "\n")
    suite = write_suite(tmp_path, data, [{"name": "a", "url": mock.base_url, "model": "m"}],
                        criteria=[{"name": "tests", "type": "code_tests"}])
    rc, err = _eval(suite)
    assert rc == 2 and "pass --allow-code-execution" in err
    assert requests_seen(mock) == 0


def test_a_missing_api_key_variable(tmp_path: Path, mock) -> None:
    data = label_dataset(tmp_path / "d.jsonl", 3)
    suite = write_suite(tmp_path, data, [{"name": "a", "url": mock.base_url, "model": "m",
                                          "api_key_env": "LOADBENCH_TEST_UNSET_KEY"}])
    rc, err = _eval(suite)
    assert rc == 2 and "LOADBENCH_TEST_UNSET_KEY: is not set" in err
    assert requests_seen(mock) == 0


def test_an_unknown_protocol_of_a_suite_target_is_refused_naming_the_field(tmp_path: Path) -> None:
    from loadbench.eval.suite import load_suite

    data = tmp_path / "cases.jsonl"
    data.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}], "label": "x"}\n')
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: s\ndatasets: [{data}]\ncriteria: [{{name: l, type: classification}}]\n"
                     "targets: [{name: t, url: 'http://127.0.0.1:9', model: m, protocol: klingon}]\n")
    with pytest.raises(ConfigError) as err:
        load_suite(suite)
    assert "targets[0].protocol" in str(err.value) and "anthropic" in str(err.value)
