"""Cache config validation, Cache-Control parsing, scope and response headers."""

from __future__ import annotations

import pytest

from loadbench.cache import (
    CacheConfig,
    load_cache_config,
    parse_cache_control,
    response_headers,
    scope_for,
    tenant_from_api_key,
)
from loadbench.errors import ConfigError


def test_defaults_and_overrides() -> None:
    base = load_cache_config({"mode": "semantic", "similarity_threshold": 0.92})
    assert base.ttl_s == 3600 and base.max_entries == 100_000 and base.max_messages == 4
    assert base.namespace == "default" and not base.cache_nondeterministic and base.near_miss_guard
    vm = base.with_overrides({"ttl_s": 60})
    assert (vm.mode, vm.similarity_threshold, vm.ttl_s) == ("semantic", 0.92, 60)
    assert base.with_overrides(None) is base


@pytest.mark.parametrize(("data", "field"), [
    ({"similarity_treshold": 0.9}, "cache.similarity_treshold"),
    ({"similarity_threshold": 0}, "cache.similarity_threshold"),
    ({"similarity_threshold": 1.5}, "cache.similarity_threshold"),
    ({"mode": "fuzzy"}, "cache.mode"),
    ({"max_entries": 0}, "cache.max_entries"),
    ({"embedder": {"kind": "openai"}}, "cache.embedder.openai.base_url"),
    ({"embedder": {"kind": "builtin", "dim": 128, "model": "x"}}, "cache.embedder.builtin.model"),
])
def test_bad_config_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_cache_config(data, path="gw.yaml")
    assert err.value.path == "gw.yaml"
    assert err.value.field == field


@pytest.mark.parametrize(("header", "expected"), [
    (None, (True, True)),
    ("", (True, True)),
    ("no-cache", (False, True)),
    ("No-Store", (True, False)),
    ("no-cache, no-store", (False, False)),
    ("max-age=0", (False, True)),
    ("max-age=60", (True, True)),
    ("private, max-age=\"0\"", (False, True)),
    ("no-transform", (True, True)),
])
def test_parse_cache_control(header: str | None, expected: tuple[bool, bool]) -> None:
    assert parse_cache_control(header) == expected


def test_scope_uses_key_identity_and_namespace_header_only_when_allowed() -> None:
    off = CacheConfig()
    a = scope_for(off, api_key="sk-a", virtual_model="vm", headers={"X-Loadbench-Cache-Namespace": "team"})
    b = scope_for(off, api_key="sk-b", virtual_model="vm", headers={"X-Loadbench-Cache-Namespace": "team"})
    assert a != b and "sk-a" not in a.tenant
    assert a.tenant == tenant_from_api_key("sk-a")
    on = CacheConfig(allow_namespace_header=True, namespace="prod")
    a = scope_for(on, api_key="sk-a", virtual_model="vm", headers={"x-loadbench-cache-namespace": "team"})
    b = scope_for(on, api_key="sk-b", virtual_model="vm", headers={"X-Loadbench-Cache-Namespace": "team"})
    assert a == b and a.tenant == "ns:team" and a.namespace == "prod"
    assert scope_for(on, api_key="sk-a", virtual_model="vm", headers={}).tenant == tenant_from_api_key("sk-a")
    assert tenant_from_api_key(None) == "anonymous"
    d1 = scope_for(off, key_digest=b"\x01" * 16, virtual_model="vm")
    d2 = scope_for(off, key_digest=b"\x02" * 16, virtual_model="vm")
    assert d1 != d2 and d1.tenant == "key:" + "01" * 16


def test_response_headers() -> None:
    assert response_headers("hit-semantic", 0.93456) == {
        "x-loadbench-cache": "hit-semantic", "x-loadbench-cache-similarity": "0.9346",
        "Cache-Status": "loadbench; hit"}
    assert response_headers("hit-exact", 1.0) == {"x-loadbench-cache": "hit-exact",
                                                   "Cache-Status": "loadbench; hit"}
    assert response_headers("miss")["Cache-Status"] == "loadbench; fwd=miss"
    assert response_headers("bypass")["x-loadbench-cache"] == "bypass"
