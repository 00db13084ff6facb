"""Configuration validation (DESIGN §1, §5): one clear line per problem, never a secret."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.core import SECRET, acme_config, private_pem, public_pem, rsa_private
from worker.core.community import prepare
from worker.core.config import CommunitySpec, ConfigError, validate_spec
from worker.core.reasons import Mode
from worker.store.yaml_io import parse_yaml


def _problems(config: Any) -> list[str]:
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    with pytest.raises(ConfigError) as info:
        parse_yaml(text)
    problems = info.value.problems
    assert problems, "a ConfigError names at least one problem"
    for line in problems:
        assert "\n" not in line and line.strip() == line and line
    return problems


def _one(**key: Any) -> dict[str, Any]:
    return {"communities": [{"id": "c", "jwt_keys": [key]}]}


def test_defaults() -> None:
    text = f"communities:\n  - id: c\n    jwt_keys: [{{kid: k, hmac_secret: '{SECRET}'}}]\n"
    community = prepare(parse_yaml(text))["c"]
    assert community.mode is Mode.REQUIRE
    assert community.min_validity_seconds == 3600 and community.leeway_seconds == 10


def test_the_design_example_loads() -> None:
    communities = prepare(parse_yaml(yaml.safe_dump({"communities": [acme_config()]})))
    assert set(communities["acme"].keys) == {"acme_2026", "acme_rsa"}


@pytest.mark.parametrize(
    "secret",
    [
        "0123456789ABCDEF01234567",  # uppercase
        "0123456789abcdef0123456",  # 23
        "0123456789abcdef012345678",  # 25
        "0123456789abcdeg01234567",  # not hex
        " 123456789abcdef01234567",
        "",
    ],
)
def test_hmac_secret_must_be_24_lowercase_hex_and_is_never_echoed(secret: str) -> None:
    problems = _problems(_one(kid="k", hmac_secret=secret))
    assert len(problems) == 1
    assert problems[0].startswith("communities[0].jwt_keys[0].hmac_secret")
    if secret.strip():
        assert secret.strip() not in "; ".join(problems)


def test_hmac_secret_as_a_yaml_number_is_refused() -> None:
    text = (
        "communities:\n  - id: c\n    jwt_keys:\n"
        "      - kid: k\n        hmac_secret: 123456789012345678901234\n"
    )
    problems = _problems(text)
    assert "hmac_secret" in problems[0] and "123456789012345678901234" not in problems[0]


def test_a_valid_secret_is_not_echoed_when_something_else_is_wrong() -> None:
    problems = _problems(_one(kid="BAD KID", hmac_secret=SECRET))
    assert SECRET not in "; ".join(problems)
    assert problems[0].startswith("communities[0].jwt_keys[0].kid")


def test_each_problem_is_its_own_line() -> None:
    config = {
        "communities": [
            {
                "id": "bad id",
                "signed_identities": "maybe",
                "jwt_keys": [{"kid": "K", "hmac_secret": "nope"}],
                "leeway_seconds": -1,
            }
        ]
    }
    problems = _problems(config)
    assert len(problems) >= 4
    joined = "\n".join(problems)
    for where in ("].id", "signed_identities", "kid", "hmac_secret", "leeway_seconds"):
        assert where in joined


@pytest.mark.parametrize("kid", ["K1", "../k", "k-1", "k 1", "a" * 65, "", "k'1", "ké"])
def test_kid_rules(kid: str) -> None:
    problems = _problems(_one(kid=kid, hmac_secret=SECRET))
    assert any("kid" in p for p in problems)


def test_kid_of_64_chars_is_accepted() -> None:
    parse_yaml(yaml.safe_dump(_one(kid="a" * 64, hmac_secret=SECRET)))


def test_duplicate_kid_is_refused() -> None:
    config = {"communities": [{"id": "c", "jwt_keys": [{"kid": "k", "hmac_secret": SECRET}] * 2}]}
    assert any("duplicate" in p for p in _problems(config))


def test_exactly_one_key_kind() -> None:
    assert _problems(_one(kid="k"))
    pem = public_pem(rsa_private())
    problems = _problems(_one(kid="k", hmac_secret=SECRET, rsa_public_key=pem))
    assert SECRET not in "; ".join(problems)


@pytest.mark.parametrize("pkcs1", [False, True], ids=["BEGIN PUBLIC KEY", "BEGIN RSA PUBLIC KEY"])
def test_both_public_pem_headers_are_accepted(pkcs1: bool) -> None:
    pem = public_pem(rsa_private(), pkcs1=pkcs1)
    assert pem.startswith("-----BEGIN RSA PUBLIC KEY-----" if pkcs1 else "-----BEGIN PUBLIC KEY-----")
    community = prepare(parse_yaml(yaml.safe_dump(_one(kid="k", rsa_public_key=pem))))["c"]
    assert community.keys["k"].alg == "RS256"


def test_both_pem_forms_give_the_same_fingerprint() -> None:
    a = prepare(parse_yaml(yaml.safe_dump(_one(kid="k", rsa_public_key=public_pem(rsa_private())))))
    b = prepare(parse_yaml(yaml.safe_dump(_one(kid="k", rsa_public_key=public_pem(rsa_private(), True)))))
    assert a["c"].keys["k"].fingerprint == b["c"].keys["k"].fingerprint


def test_private_rsa_key_is_refused_without_echoing_it() -> None:
    pem = private_pem(rsa_private())
    problems = _problems(_one(kid="k", rsa_public_key=pem))
    assert len(problems) == 1 and "private" in problems[0]
    body = pem.splitlines()[1]
    assert body not in problems[0]


def test_rsa_key_below_2048_bits_is_refused() -> None:
    problems = _problems(_one(kid="k", rsa_public_key=public_pem(rsa_private(1024))))
    assert "1024" in problems[0] and "2048" in problems[0]


@pytest.mark.parametrize(
    "pem",
    [
        "not a pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN CERTIFICATE-----\n",
    ],
)
def test_unreadable_rsa_key_is_refused(pem: str) -> None:
    assert "rsa_public_key" in _problems(_one(kid="k", rsa_public_key=pem))[0]


def test_non_rsa_public_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert "RSA" in _problems(_one(kid="k", rsa_public_key=pem))[0]


def test_mapping_to_an_undeclared_custom_field_is_refused() -> None:
    config = {"communities": [{"id": "c", "mappings": [{"from": "uuid", "to": "custom_fields.nope"}]}]}
    problems = _problems(config)
    assert len(problems) == 1 and "nope" in problems[0] and "not declared" in problems[0]


@pytest.mark.parametrize(
    "mapping,where",
    [
        ({"from": "email", "to": "identity_group.notes"}, "from"),
        ({"from": "extra_values.", "to": "identity_group.notes"}, "from"),
        ({"from": "extra_values." + "k" * 65, "to": "identity_group.notes"}, "from"),
        ({"from": "uuid", "to": "identity_group.age"}, "to"),
        ({"from": "uuid", "to": "custom_fields.Bad"}, "to"),
        ({"from": "uuid", "to": "notes"}, "to"),
    ],
)
def test_mapping_source_and_target_forms(mapping: dict[str, str], where: str) -> None:
    problems = _problems({"communities": [{"id": "c", "mappings": [mapping]}]})
    assert f"mappings[0].{where}" in problems[0]


@pytest.mark.parametrize("key", ["Customer", "a-b", "", "k" * 65])
def test_custom_field_key_rules(key: str) -> None:
    problems = _problems({"communities": [{"id": "c", "custom_fields": [{"key": key, "label": "L"}]}]})
    assert "custom_fields[0].key" in problems[0]


def test_duplicate_community_is_refused() -> None:
    c = {"id": "c", "signed_identities": "reject"}
    assert any("duplicate" in p for p in _problems({"communities": [c, c]}))


def test_unknown_setting_is_refused() -> None:
    assert _problems({"communities": [{"id": "c", "signed": True}]})


@pytest.mark.parametrize("text", ["communities: [", "- a\n- b\n", "communities: {id: c}\n"])
def test_not_a_configuration_is_one_clear_error(text: str) -> None:
    _problems(text)


# ---------------------------------------------------------------- repeated keys, one PEM


ISSUE12_REPEATED_MODE = """\
communities:
  - id: acme
    signed_identities: require
    jwt_keys:
      - kid: acme_2026
        hmac_secret: "0123456789abcdef01234567"
    signed_identities: reject
"""


def test_issue12_kind6_repeated_signed_identities_is_one_line_naming_key_and_line() -> None:
    """A community entry with `signed_identities: require` followed by
    `signed_identities: reject` was accepted and silently ran in reject mode (PyYAML keeps the
    last of a repeated key)."""
    assert _problems(ISSUE12_REPEATED_MODE) == [
        "line 7: key 'signed_identities' repeated in one mapping (first at line 3); keep one"
    ]


@pytest.mark.parametrize(
    "text,key,line",
    [
        ("communities: []\ncommunities: []\n", "communities", 2),
        ("communities:\n  - id: a\n    id: b\n    signed_identities: reject\n", "id", 3),
        ("communities:\n  - id: a\n    jwt_keys:\n      - kid: k\n        kid: j\n", "kid", 5),
        (
            'communities:\n  - id: a\n    "signed_identities": reject\n    signed_identities: reject\n',
            "signed_identities",
            4,
        ),
        ("communities:\n  - {id: a, signed_identities: reject, id: a}\n", "id", 2),
        (
            "communities:\n  - id: a\n    signed_identities: reject\n    custom_fields:\n"
            "      - {key: k, label: L, label: M}\n",
            "label",
            5,
        ),
        (
            "communities:\n  - id: a\n    signed_identities: reject\n    mappings:\n"
            "      - from: uuid\n        to: identity_group.notes\n        from: uuid\n",
            "from",
            7,
        ),
        (
            "communities:\n  - id: a\n    jwt_keys:\n"
            f"      - {{kid: k, hmac_secret: '{SECRET}', hmac_secret: x}}\n",
            "hmac_secret",
            4,
        ),
    ],
)
def test_a_key_repeated_in_any_mapping_is_refused(text: str, key: str, line: int) -> None:
    (problem,) = _problems(text)
    assert problem.startswith(f"line {line}: key '{key}' repeated") and SECRET not in problem


@pytest.mark.parametrize(
    "text,problem",
    [
        ("a: &a {x: 1}\ncommunities:\n  - <<: *a\n    <<: *a\n", "line 4: key '<<' repeated"),
        ("communities: []\n1: x\n0x1: y\n", "line 3: key 1 repeated"),  # equal once YAML resolves them
        ("communities: []\ntrue: x\nyes: y\n", "line 3: key True repeated"),
        ("communities: []\n? communities\n: []\n", "line 2: key 'communities' repeated"),
    ],
)
def test_keys_equal_after_yaml_resolution_are_repeated_keys(text: str, problem: str) -> None:
    (line,) = _problems(text)
    assert line.startswith(problem)


def test_the_same_key_in_different_mappings_and_merge_keys_are_fine() -> None:
    text = (
        "communities:\n  - id: a\n    signed_identities: reject\n  - id: b\n    signed_identities: reject\n"
        "    mappings:\n      - &m {from: uuid, to: identity_group.notes}\n"
        "      - <<: *m\n        to: identity_group.company\n"
    )
    spec = parse_yaml(text)
    assert [m.to for m in spec.communities[1].mappings] == ["identity_group.notes", "identity_group.company"]


_KEYED = f"jwt_keys: [{{kid: k, hmac_secret: '{SECRET}'}}]"


@pytest.mark.parametrize(
    "text,problem",
    [
        (  # a mapping written inline after `<<` is never constructed on its own
            "communities:\n  - <<: {signed_identities: require, signed_identities: reject}\n"
            f"    id: a\n    {_KEYED}\n",
            "line 2: key 'signed_identities' repeated in one mapping",
        ),
        (
            "communities:\n  - <<: [{id: x}, {signed_identities: require, signed_identities: reject}]\n"
            f"    id: a\n    {_KEYED}\n",
            "line 2: key 'signed_identities' repeated in one mapping",
        ),
        (  # two merged mappings give the same key: which wins differs between YAML readers
            "communities:\n  - <<: [{signed_identities: reject}, {signed_identities: require}]\n"
            f"    id: a\n    {_KEYED}\n",
            "line 2: key 'signed_identities' comes from more than one merged mapping",
        ),
        (
            "communities:\n  - &r {id: r, signed_identities: reject}\n"
            f"  - &q {{id: q, signed_identities: require, {_KEYED}}}\n"
            "  - <<: [*r, *q]\n    id: a\n",
            "line 4: key 'id' comes from more than one merged mapping",
        ),
    ],
)
def test_review_a_key_repeated_through_merge_keys_is_refused(text: str, problem: str) -> None:
    """DESIGN §5: `<<: {signed_identities: require,
    signed_identities: reject}` was accepted in reject mode (the inline merged mapping was never
    checked), and `<<: [*reject, *require]` ran in require mode, where YAML's merge gives the
    first mapping precedence (PyYAML 6.0.4 decides by string identity). One line, no winner."""
    (line,) = _problems(text)
    assert line.startswith(problem), line


@pytest.mark.parametrize(
    "text",
    [
        "communities:\n  - <<: {? [a]: 1}\n    id: a\n",
        "communities:\n  - <<: [{b: 2}, {? [a]: 1}]\n    id: a\n",
    ],
)
def test_review_an_unhashable_key_in_a_merged_mapping_is_one_line(text: str) -> None:
    """The merge checks above must not turn PyYAML's own refusal into a TypeError."""
    (line,) = _problems(text)
    assert "found unhashable key" in line


def test_review_merge_keys_keep_their_meaning() -> None:
    """A key written in the mapping overrides a merged one; a merged mapping whose own merge is
    overridden gives its override, wherever it is merged again."""
    text = (
        f"communities:\n  - &a\n    <<: {{signed_identities: reject}}\n    id: a\n"
        f"    signed_identities: require\n    {_KEYED}\n"
        "  - <<: *a\n    id: b\n  - <<: *a\n    id: c\n    signed_identities: reject\n"
    )
    modes = {c.id: c.signed_identities.value for c in parse_yaml(text).communities}
    assert modes == {"a": "require", "b": "require", "c": "reject"}


def test_a_repeated_key_shaped_like_a_secret_is_not_echoed() -> None:
    text = f"communities: []\n'{SECRET}': 1\n'{SECRET}': 2\n"
    (problem,) = _problems(text)
    assert SECRET not in problem and problem.startswith("line 3: key (a key shaped like a secret) repeated")


@pytest.mark.parametrize(
    "text",
    [
        f"communities:\n  - id: c\n    jwt_keys:\n      - kid: k\n        '{SECRET}': hmac_secret\n",
        f"communities:\n  - id: c\n    signed_identities: reject\n    hmac_secret={SECRET}: 1\n",
        f"'{SECRET}':\n  - 1\n",
        "communities: []\n123456789012345678901234: 1\n123456789012345678901234: 2\n",  # a YAML int
    ],
)
def test_review_an_unknown_key_shaped_like_a_secret_is_not_echoed(text: str) -> None:
    """A secret pasted as a key (the key and value swapped) was echoed in
    the location of "Extra inputs are not permitted" (secrets never appear in error messages)."""
    (problem,) = _problems(text)
    assert SECRET not in problem and "(a key shaped like a secret)" in problem, problem
    assert "123456789012345678901234" not in problem


def test_issue12_kind6_a_pem_value_with_two_public_keys_is_refused() -> None:
    """A PEM value holding two public keys was accepted and only the first was
    used (a rotation would silently fail): one key per value."""
    two = public_pem(rsa_private()) + public_pem(rsa_private(2048, 1))
    (problem,) = _problems(_one(kid="k", rsa_public_key=two))
    assert "2 PEM blocks" in problem and "one key per value" in problem


@pytest.mark.parametrize(
    "spoil",
    [
        lambda pem, other: pem + other,  # SPKI + SPKI
        lambda pem, other: pem + public_pem(rsa_private(2048, 1), pkcs1=True),  # SPKI + PKCS#1
        lambda pem, other: pem + "\n\n" + other,
        lambda pem, other: pem + private_pem(rsa_private(2048, 1)),  # a private key after the public one
        lambda pem, other: pem + "trailing text\n",
        lambda pem, other: pem.strip() + other.strip().replace("-----BEGIN PUBLIC KEY-----", ""),
    ],
)
def test_a_pem_value_holds_exactly_one_public_key(spoil: Any) -> None:
    pem, other = public_pem(rsa_private()), public_pem(rsa_private(2048, 1))
    _problems(_one(kid="k", rsa_public_key=spoil(pem, other)))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda pem: pem.replace("PUBLIC KEY", "RSA PUBLIC KEY"),  # an SPKI body under the PKCS#1 label
        lambda pem: pem.replace("-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1),  # a header line
    ],
)
def test_review_a_pem_value_is_read_as_the_store_reads_it(spoil: Any) -> None:
    """One reading everywhere (DESIGN §5): `cryptography` read an SPKI
    body under `BEGIN RSA PUBLIC KEY` and skipped PEM header lines, so `process --config` ran
    with a key that `config apply` and `keys add` then could not store (the database's CHECK
    refuses it). The body must be exactly the key's DER in the form its label names."""
    (problem,) = _problems(_one(kid="k", rsa_public_key=spoil(public_pem(rsa_private()))))
    assert "rsa_public_key must be the key alone" in problem, problem


# ---------------------------------------------------------------- S1 in the spec


S1_LINE = (
    "communities[0]: community acme requires signed identities but has no JWT key (S1): "
    "give it a key (jwt_keys), or set signed_identities to reject"
)


@pytest.mark.parametrize(
    "community",
    [
        {"id": "acme"},  # require is the default
        {"id": "acme", "signed_identities": "require"},
        {"id": "acme", "signed_identities": "require", "jwt_keys": []},
        {"id": "acme", "jwt_keys": [], "custom_fields": [{"key": "k", "label": "K"}]},
    ],
)
def test_issue12_kind7_a_require_community_without_a_key_is_one_line(community: dict[str, Any]) -> None:
    """S1 in YAML: `require` with no key is refused, saying what to do."""
    assert _problems({"communities": [community]}) == [S1_LINE]


def test_s1_reject_mode_needs_no_key_and_require_with_a_key_loads() -> None:
    assert prepare(parse_yaml("communities:\n  - id: shop\n    signed_identities: reject\n"))
    text = f"communities:\n  - id: acme\n    jwt_keys:\n      - kid: k\n        hmac_secret: '{SECRET}'\n"
    assert prepare(parse_yaml(text))["acme"].mode is Mode.REQUIRE


def test_s1_rows_read_back_from_the_store_still_load() -> None:
    """Rows written before migration 0002 may break S1: a worker loads them (refusing their
    events as before) rather than stopping; only writes are held to S1."""
    assert validate_spec(CommunitySpec, {"id": "old"}, s1=False).jwt_keys == []
    with pytest.raises(ConfigError):
        validate_spec(CommunitySpec, {"id": "old"})
