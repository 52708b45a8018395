"""The pure parts of scenario providers: signature policy, codes, key sealing and parsing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.errors import InvalidInput, Unauthorized
from carbon_credits.providers import bindings, registry, signatures

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
FULL = [("@method", {}), ("@target-uri", {}), ("content-digest", {})]
PARAMS = {"created": 1, "keyid": "k", "nonce": "n"}


def code_of(call: object, *args: object) -> str:
    with pytest.raises(Unauthorized) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.code


@given(st.integers(min_value=0, max_value=300))
def test_a_signature_within_the_age_limit_passes(age: int) -> None:
    signatures.check_created(int(NOW.timestamp()) - age, NOW, 300, 30)


@given(st.integers(min_value=301, max_value=10**9))
def test_a_signature_past_the_age_limit_is_expired(age: int) -> None:
    assert code_of(signatures.check_created, int(NOW.timestamp()) - age, NOW, 300,
                   30) == "signature_expired"


@given(st.integers(min_value=31, max_value=10**9))
def test_a_signature_ahead_beyond_the_skew_is_in_the_future(ahead: int) -> None:
    assert code_of(signatures.check_created, int(NOW.timestamp()) + ahead, NOW, 300,
                   30) == "signature_in_future"


def test_a_signature_ahead_within_the_skew_passes() -> None:
    signatures.check_created(int(NOW.timestamp()) + 30, NOW, 300, 30)


def test_full_coverage_passes() -> None:
    signatures.check_coverage(FULL, PARAMS)
    signatures.check_coverage([*FULL[:2], ("content-digest", {"sf": True})], PARAMS)


@pytest.mark.parametrize("left_out", [0, 1, 2])
def test_each_required_component_is_required(left_out: int) -> None:
    covered = [c for i, c in enumerate(FULL) if i != left_out]
    assert code_of(signatures.check_coverage, covered, PARAMS) == "component_not_covered"


def test_a_digest_member_alone_is_not_the_digest() -> None:
    """A ``key`` selects one member: another member could then be changed unsigned."""
    covered = [*FULL[:2], ("content-digest", {"key": "sha-256"})]
    assert code_of(signatures.check_coverage, covered, PARAMS) == "component_not_covered"


@pytest.mark.parametrize("param", ["created", "keyid", "nonce"])
def test_each_required_parameter_is_required(param: str) -> None:
    params = {k: v for k, v in PARAMS.items() if k != param}
    assert code_of(signatures.check_coverage, FULL, params) == "signature_param_missing"


@pytest.mark.parametrize("params", [{**PARAMS, "created": "1"}, {**PARAMS, "nonce": 5},
                                    {**PARAMS, "nonce": "x" * 129}, {**PARAMS, "nonce": ""}])
def test_badly_typed_parameters_are_malformed(params: dict[str, object]) -> None:
    assert code_of(signatures.check_coverage, FULL, params) == "signature_malformed"


@pytest.mark.parametrize("value", ['sig1=("@method"', "a=(), b=()", 'sig1="@method"', "é"])
def test_malformed_signature_input_is_refused(value: str) -> None:
    assert code_of(signatures.parse_signature_input, value) == "signature_malformed"


def test_signature_input_is_parsed() -> None:
    components, params = signatures.parse_signature_input(
        'sig1=("@method" "content-digest";sf);created=1;keyid="k";nonce="n"')
    assert components == [("@method", {}), ("content-digest", {"sf": True})]
    assert params == {"created": 1, "keyid": "k", "nonce": "n"}


def test_codes_are_long_and_unambiguous() -> None:
    codes = {bindings.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 11 and code[5] == "-"
        assert set(code.replace("-", "")) <= set(bindings.CODE_ALPHABET)
        assert not set(code) & set("01ILOU")


def test_a_code_is_matched_however_it_is_typed() -> None:
    assert bindings.code_hash("K7QXM-2PDHR") == bindings.code_hash(" k7qxm 2pdhr ")
    assert bindings.code_hash("K7QXM-2PDHR") != bindings.code_hash("K7QXM-2PDHS")


def test_a_sealed_secret_opens_only_with_its_key_id_and_material() -> None:
    sealed = registry.seal(b"s" * 32, "key-1", "material")
    assert registry.unseal(sealed, "key-1", "material") == b"s" * 32
    assert b"s" * 32 not in sealed
    with pytest.raises(registry.KeyUnusable):
        registry.unseal(sealed, "key-2", "material")
    with pytest.raises(registry.KeyUnusable):
        registry.unseal(sealed, "key-1", "other material")


def test_ed25519_public_keys_in_pem_or_raw_base64() -> None:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    raw = base64.b64encode(public.public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)).decode()
    assert registry.parse_public_key(pem) == pem
    assert registry.parse_public_key(raw) == pem


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"short").decode(),
                                  "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"])
def test_what_is_no_ed25519_key_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        registry.parse_public_key(text)
    assert "public_key" in refused.value.fields


def test_an_rsa_key_is_no_ed25519_key() -> None:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(
    ).public_bytes(serialization.Encoding.PEM,
                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(InvalidInput):
        registry.parse_public_key(pem)


def test_modes_must_be_known_and_not_empty() -> None:
    assert registry.check_modes(["metro", "bus", "metro"]) == ["bus", "metro"]
    for modes in ([], ["plane"]):
        with pytest.raises(InvalidInput):
            registry.check_modes(modes)


def test_ids_are_checked() -> None:
    pattern = registry.PROVIDER_ID_PATTERN
    assert registry.check_id("sz-metro", pattern, "id") == "sz-metro"
    for bad in ("", "a/b", "x" * 33, "-a", "a\n"):
        with pytest.raises(InvalidInput):
            registry.check_id(bad, pattern, "id")


def test_the_audit_view_is_plain_json() -> None:
    view = {"at": NOW, "keys": [{"revoked_at": NOW + timedelta(seconds=1)}], "n": None}
    assert registry.for_audit(view) == {
        "at": NOW.isoformat(), "keys": [{"revoked_at": (NOW + timedelta(seconds=1)).isoformat()}],
        "n": None}
