"""Config messages that used to mislead (issue: an empty file, 1e12, thresholds, encodings, class names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench.config import load_profile, load_scenario
from loadbench.errors import ConfigError
from loadbench.run.inputs import load_inputs
from loadbench.run.request import RunRequest


def _file(tmp_path: Path, data: str | bytes, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_is_refused_instead_of_running_the_defaults(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"the profile file is empty.*leave out --profile"):
        load_profile(_file(tmp_path, text))
    with pytest.raises(ConfigError, match=r"the scenario file is empty.*leave out --scenario"):
        load_scenario(_file(tmp_path, text, "s.yaml"))


def test_an_exponent_is_a_number_not_a_quoted_string(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_profile(_file(tmp_path, "duration_s: 1e12\n"))
    assert info.value.field == "duration_s"
    assert "quotes" not in str(info.value) and "out of range" in str(info.value)
    assert load_profile(_file(tmp_path, "duration_s: 3e1\n")).duration_s == 30.0
    with pytest.raises(ConfigError, match="remove the quotes"):  # quoted, it is a string
        load_profile(_file(tmp_path, 'duration_s: "30"\n'))


def test_a_bad_threshold_names_the_file_and_the_entry(tmp_path: Path) -> None:
    path = _file(tmp_path, 'thresholds: ["ttft.p95 > 500ms", "ttft.p95 >> 5"]\n')
    with pytest.raises(ConfigError) as info:
        load_inputs(RunRequest(profile_path=path))
    assert (info.value.path, info.value.field) == (str(path), "thresholds[1]")
    assert "ttft.p95 >> 5" in str(info.value)


def test_a_file_that_is_not_utf8_says_so_with_its_line(tmp_path: Path) -> None:
    path = _file(tmp_path, b"users: 2\nname: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.field == "line 2" and "not UTF-8" in str(info.value)
    assert "save the file as UTF-8" in str(info.value)
    assert "permissions" not in str(info.value)


def test_a_type_error_does_not_name_an_internal_class(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(_file(tmp_path, "mix:\n  - 5\n", "s.yaml"))
    assert info.value.field == "mix[0]" and "a mapping of key: value" in str(info.value)
    assert "MixEntry" not in str(info.value) and "instance" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_profile(_file(tmp_path, "arrival: 5\n"))
    assert "Arrival" not in str(info.value)
