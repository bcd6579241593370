"""Gateway config validation: every error names the file and the field; the CLI exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadbench.errors import ConfigError, ExitCode
from loadbench.gateway.config import load_config

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
targets:
  - {name: a, url: "http://127.0.0.1:1/v1", model: m}
  - {name: b, url: "http://127.0.0.1:2/v1", model: m, api_key_env: B_KEY}
virtual_models:
  - name: vm
    routing: priority
    targets:
      - {target: a, priority: 0, sla_cutoff: {time_per_output_token_ms: 40}}
      - {target: b, priority: 1}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gw.yaml"
    p.write_text(text)
    return p


def test_example_profile_is_valid() -> None:
    spec = load_config(ROOT / "profiles/gateway/example.yaml", env={})
    assert "support-bot/summarize" in spec.routes
    vm = spec.routes["support-bot/summarize"]
    assert [t.weight for t in vm.targets] == [95, 5]
    assert vm.retry_attempts == 2 and vm.retry_delay_s == pytest.approx(0.1)
    assert spec.targets["fast"].max_connections == 512


def test_good_config_reads_upstream_key_from_env_and_hides_it(tmp_path: Path) -> None:
    spec = load_config(write(tmp_path, GOOD), env={"B_KEY": "sk-secret"})
    assert spec.targets["b"].api_key == "sk-secret"
    assert "sk-secret" not in repr(spec.targets["b"])
    assert spec.routes["vm"].targets[0].sla_cutoff_tpot_ms == 40


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (GOOD.replace("model: m}", "model: m, max_conections: 3}", 1), "targets[0].max_conections",
         "did you mean 'max_connections'"),
        (GOOD.replace("routing: priority", "routing: fastest"), "virtual_models[0].routing", "priority"),
        (
            GOOD.replace("{target: b, priority: 1}", "{target: c, priority: 1}"),
            "virtual_models[0].targets[1].target",
            "unknown target 'c'",
        ),
        (GOOD.replace("priority: 1}", "priority: -1}"), "virtual_models[0].targets[1].priority", "must be >= 0"),
        (
            GOOD.replace("routing: priority", "routing: weight"),
            "virtual_models[0].targets[0].sla_cutoff",
            "priority",
        ),
        (GOOD.replace('url: "http://127.0.0.1:1/v1"', "url: localhost:1"), "targets[0].url", "pattern"),
        (GOOD.replace("name: b,", "name: a,"), "targets[1].name", "duplicate"),
        ("targets: [\n  - {name: a", "line", "YAML"),
        ("[]", "(document)", "mapping"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={"B_KEY": "k"})
    assert info.value.field.startswith(field)
    assert words in str(info.value)
    assert str(tmp_path / "gw.yaml") in str(info.value)


@pytest.mark.parametrize(("block", "field", "close"), [
    ("cache: {similarity_treshold: 0.9}\n", "cache.similarity_treshold", "similarity_threshold"),
    ("limits: {max_body_byte: 10}\n", "limits.max_body_byte", "max_body_bytes"),
])
def test_gateway_and_cache_typos_get_the_same_message_as_profiles(tmp_path: Path, block: str, field: str,
                                                                  close: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD + block), env={"B_KEY": "k"})
    assert info.value.field == field
    assert info.value.problem == f"unknown key {field.rsplit('.', 1)[1]!r}"
    assert f"did you mean {close!r}?" in info.value.fix


def test_a_per_model_cache_typo_names_its_full_path(tmp_path: Path) -> None:
    text = GOOD.replace("routing: priority", "routing: priority\n    cache: {ttl: 5}")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={"B_KEY": "k"})
    assert info.value.field == "virtual_models[0].cache.ttl"
    assert "did you mean 'ttl_s'?" in info.value.fix


def test_a_duplicate_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD + "limits: {}\nlimits: {}\n"), env={"B_KEY": "k"})
    assert info.value.field.startswith("line ") and "duplicate key 'limits'" in info.value.problem


def test_missing_upstream_key_env_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD), env={})
    assert info.value.field == "targets[1].api_key_env" and "B_KEY" in info.value.problem


def test_client_keys_from_file(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_text("# comment\nkey-one\n\nkey-two\n")
    spec = load_config(write(tmp_path, GOOD + "auth: {api_keys_file: keys.txt}\n"), env={"B_KEY": "k"})
    assert len(spec.client_key_digests) == 2
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD + "auth: {api_keys_env: GW_KEYS}\n"), env={"B_KEY": "k"})
    assert info.value.field == "auth.api_keys_env"


def test_cli_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("{target: b, priority: 1}", "{target: nope}"))
    proc = subprocess.run(
        [sys.executable, "-m", "loadbench", "gateway", "--config", str(bad), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"B_KEY": "k", "PATH": ""},
    )
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "virtual_models[0].targets[1].target" in proc.stderr
    assert "listening" not in proc.stdout


def test_importing_the_gateway_never_imports_gevent() -> None:
    code = (
        "import sys, loadbench.gateway.server, loadbench.gateway.app, loadbench.cli.gateway_cmd; "
        "assert not [m for m in sys.modules if m.startswith(('gevent', 'locust'))]"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
