from __future__ import annotations

from pathlib import Path

import pytest

from profiles.errors import ScopeError
from scanner.targets import LARGE_SCOPE, Scope, build_scope


def no_dns(name: str) -> list[str]:
    raise AssertionError(f"unexpected DNS lookup of {name}")


def test_cidr_skips_network_and_broadcast() -> None:
    scope = build_scope(["10.77.0.0/24"], resolver=no_dns)
    addrs = list(scope)
    assert scope.count == 254 and addrs[0] == "10.77.0.1" and addrs[-1] == "10.77.0.254"


def test_ranges_single_and_short_form() -> None:
    assert list(build_scope(["10.0.0.5-10.0.0.7"], resolver=no_dns)) == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert list(build_scope(["10.0.0.5-6"], resolver=no_dns)) == ["10.0.0.5", "10.0.0.6"]
    assert list(build_scope(["192.0.2.9"], resolver=no_dns)) == ["192.0.2.9"]


def test_ipv6_literal_and_network() -> None:
    assert list(build_scope(["2001:db8::1"], resolver=no_dns)) == ["2001:db8::1"]
    assert build_scope(["2001:db8::/126"], resolver=no_dns).count == 4


def test_exclusion_same_forms_and_dedup() -> None:
    scope = build_scope(["10.0.0.0/29", "10.0.0.3"], ["10.0.0.2-3", "10.0.0.6/32"], resolver=no_dns)
    assert list(scope) == ["10.0.0.1", "10.0.0.4", "10.0.0.5"]


def test_file_targets_with_comments(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("# office\n10.1.0.1\n10.1.0.3, 10.1.0.5 # printers\n\n")
    assert list(build_scope([f"@{f}"], resolver=no_dns)) == ["10.1.0.1", "10.1.0.3", "10.1.0.5"]


def test_hostname_resolved_once_and_recorded() -> None:
    calls: list[str] = []

    def resolver(name: str) -> list[str]:
        calls.append(name)
        return ["192.0.2.10"]

    scope = build_scope(["router.example"], resolver=resolver)
    assert calls == ["router.example"]
    assert list(scope) == ["192.0.2.10"] and scope.hostname_of("192.0.2.10") == "router.example"
    assert "router.example -> 192.0.2.10" in scope.describe()


def test_scope_roundtrip_for_resume() -> None:
    scope = build_scope(["10.0.0.0/30", "2001:db8::1"], resolver=no_dns)
    assert list(Scope.from_json(scope.to_json())) == list(scope)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.9-10.0.0.1", "10.0.0.1-::1", "not_a host!", "1.2.3"])
def test_bad_specs_refused(bad: str) -> None:
    with pytest.raises(ScopeError):
        build_scope([bad], resolver=lambda n: [])


def test_scope_refusals() -> None:
    with pytest.raises(ScopeError, match="no targets"):
        build_scope([], resolver=no_dns)
    with pytest.raises(ScopeError, match="allow-large"):
        build_scope(["10.0.0.0/15"], resolver=no_dns)
    assert build_scope(["10.0.0.0/15"], allow_large=True, resolver=no_dns).count > LARGE_SCOPE
    with pytest.raises(ScopeError, match="ever"):
        build_scope(["10.0.0.0/7"], allow_large=True, resolver=no_dns)
    with pytest.raises(ScopeError, match="leave no address"):
        build_scope(["10.0.0.1"], ["10.0.0.0/24"], resolver=no_dns)


def test_large_scope_is_not_materialised() -> None:
    scope = build_scope(["10.0.0.0/8"], allow_large=True, resolver=no_dns)
    it = iter(scope)
    assert next(it) == "10.0.0.1" and scope.count == (1 << 24) - 2
