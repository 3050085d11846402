"""Image references follow the docker/distribution grammar, with docker's normalisation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_tk.hub.image_reference import (
    ImageReference,
    normalize_registry,
    parse_image_reference,
)

SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", None, None),
        ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
        ("jupyter/scipy-notebook", "docker.io", "jupyter/scipy-notebook", None, None),
        ("docker.io/ubuntu", "docker.io", "library/ubuntu", None, None),
        ("index.docker.io/library/ubuntu", "docker.io", "library/ubuntu", None, None),
        ("nvcr.io/nvidia/pytorch:24.05-py3", "nvcr.io", "nvidia/pytorch", "24.05-py3", None),
        (
            "quay.io/jupyter/scipy-notebook:2024-05-27",
            "quay.io",
            "jupyter/scipy-notebook",
            "2024-05-27",
            None,
        ),
        ("localhost/foo", "localhost", "foo", None, None),
        ("localhost:5000/foo/bar:v1", "localhost:5000", "foo/bar", "v1", None),
        # "localhost:5000" alone is a Docker Hub image called localhost with the tag 5000.
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("registry.example.com:5000/team/img", "registry.example.com:5000", "team/img", None, None),
        ("10.0.0.1:5000/img", "10.0.0.1:5000", "img", None, None),
        ("[::1]:5000/img:tag", "[::1]:5000", "img", "tag", None),
        ("[fe80::1]/img", "[fe80::1]", "img", None, None),
        # A first component with uppercase letters is a registry (docker does the same).
        ("MyRegistry/img", "MyRegistry", "img", None, None),
        ("Registry.Example.COM/img", "Registry.Example.COM", "img", None, None),
        ("a/b/c/d/e", "docker.io", "a/b/c/d/e", None, None),
        ("a-b--c/d_e__f.g", "docker.io", "a-b--c/d_e__f.g", None, None),
        ("img:TAG_With.Upper-1", "docker.io", "library/img", "TAG_With.Upper-1", None),
        ("img:_underscore", "docker.io", "library/img", "_underscore", None),
        ("img:" + "t" * 128, "docker.io", "library/img", "t" * 128, None),
        (f"img@{SHA256}", "docker.io", "library/img", None, SHA256),
        (f"quay.io/a/b:v1@{SHA256}", "quay.io", "a/b", "v1", SHA256),
        (f"img@{SHA512}", "docker.io", "library/img", None, SHA512),
        # Unregistered algorithms only need the grammar: at least 32 hex digits.
        (
            "img@multihash+base58:" + "a" * 32,
            "docker.io",
            "library/img",
            None,
            "multihash+base58:" + "a" * 32,
        ),
    ],
)
def test_valid_references(text, registry, repository, tag, digest):
    ref = parse_image_reference(text)
    assert ref == ImageReference(registry, repository, tag, digest)
    assert parse_image_reference(str(ref)) == ref


def test_str_is_the_fully_qualified_form():
    assert str(parse_image_reference("ubuntu:22.04")) == "docker.io/library/ubuntu:22.04"
    assert parse_image_reference(f"x/y:1@{SHA256}").name == "docker.io/x/y"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Ubuntu", "lowercase"),
        ("jupyter/Scipy", "lowercase"),
        ("quay.io/Jupyter/scipy", "lowercase"),
        ("ubuntu ", "whitespace"),
        (" ubuntu", "whitespace"),
        ("ubu ntu", "whitespace"),
        ("ubuntu\n", "whitespace"),
        ("ubuntu\t:1", "whitespace"),
        ("ubuntu\x00", "control"),
        ("ubüntu", "non-ASCII"),
        ("quay.io/jupyter/scipy:ťag", "non-ASCII"),
        ("\uff55buntu", "non-ASCII"),  # fullwidth letter
        ("img:tag\u200b", "non-ASCII"),  # zero-width space
        ("/ubuntu", "empty path component"),
        ("quay.io//img", "empty path component"),
        ("quay.io/img/", "empty path component"),
        ("a/../b", "path component '..'"),
        ("a..b", "path component"),
        ("-img", "path component"),
        ("img-", "path component"),
        ("img_", "path component"),
        ("a___b", "path component"),
        ("a._b", "path component"),
        ("img:", "invalid tag"),
        ("img:.tag", "invalid tag"),
        ("img:-tag", "invalid tag"),
        ("img:tag/x", "invalid registry"),
        ("img:" + "t" * 129, "invalid tag"),
        ("img:a:b", "path component"),
        ("img@", "invalid digest"),
        ("img@sha256", "invalid digest"),
        ("img@sha256:abc", "invalid digest"),
        ("img@sha256:" + "g" * 64, "invalid digest"),
        ("img@sha256:" + "a" * 63, "sha256 needs exactly 64"),
        ("img@sha256:" + "a" * 65, "sha256 needs exactly 64"),
        ("img@sha256:" + "A" * 64, "lowercase hex"),
        ("img@1sha:" + "a" * 32, "invalid digest"),
        (f"img@{SHA256}@{SHA256}", "invalid digest"),
        (":tag", "no repository"),
        ("@" + SHA256, "no repository"),
        ("a" * 64, "image ID"),
        ("quay.io:99999/img", "out of range"),
        ("quay.io:0/img", "out of range"),
        ("-bad.io/img", "invalid registry"),
        ("bad-.io/img", "invalid registry"),
        ("bad_host.io/img", "invalid registry"),
        ("a__b.c/d", "invalid registry"),
        ("quay.io:/img", "invalid registry"),
        ("quay.io:port/img", "invalid registry"),
        ("[::1/img", "invalid registry"),
        ("quay.io/" + "a" * 250, "longer than 255"),
        ("a" * 1025, "longer than 1024"),
        ("a/" * 600, "longer than 1024"),
    ],
)
def test_invalid_references(text, message):
    with pytest.raises(ValueError) as info:
        parse_image_reference(text)
    assert message in str(info.value)


@pytest.mark.parametrize("value", [None, 42, b"ubuntu", ["ubuntu"]])
def test_non_strings_are_rejected_with_value_error(value):
    with pytest.raises(ValueError, match="must be a string"):
        parse_image_reference(value)


def test_error_messages_do_not_echo_huge_input():
    with pytest.raises(ValueError) as info:
        parse_image_reference("Q" * 1000)
    assert len(str(info.value)) < 200


def test_name_length_limit_counts_the_registry():
    repository = "a" * (255 - len("quay.io/"))
    assert parse_image_reference(f"quay.io/{repository}").repository == repository
    with pytest.raises(ValueError, match="longer than 255"):
        parse_image_reference(f"quay.io/{repository}a")


@pytest.mark.parametrize(
    ("registry", "normal"),
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("Quay.IO", "quay.io"),
        ("localhost:5000", "localhost:5000"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_normalize_registry(registry, normal):
    assert normalize_registry(registry) == normal


@pytest.mark.parametrize("registry", ["", "quay.io/x", "quay.io:", "quay io", "ü.io", "a_b.io"])
def test_normalize_registry_rejects_non_hosts(registry):
    with pytest.raises(ValueError):
        normalize_registry(registry)


# -- property tests ------------------------------------------------------------------------------

_lower_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


def _components(separators):
    return st.builds(
        lambda first, rest: first + "".join(sep + part for sep, part in rest),
        _lower_alnum,
        st.lists(st.tuples(st.sampled_from(separators), _lower_alnum), max_size=3),
    )


_component = _components([".", "_", "__", "-", "--"])
# Docker reads a first component with a "." as a registry host, which may not contain "_";
# so the grammar's "a.b_c/d" is refused (stricter than the bare grammar, like docker itself).
_first_component = _components(["_", "__", "-", "--"])
_host = st.sampled_from(["", "quay.io/", "localhost:5000/", "Reg.Example.com/", "[::1]:80/"])
_tag = st.one_of(
    st.just(""),
    st.from_regex(r"\A:[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z"),
)
_digest = st.one_of(st.just(""), st.just("@" + SHA256))
_grammar_references = st.builds(
    lambda host, first, parts, tag, digest: host + "/".join([first, *parts]) + tag + digest,
    _host,
    _first_component,
    st.lists(_component, max_size=3),
    _tag,
    _digest,
)
# Anything at all, biased towards the characters the grammar cares about.
_noise = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="aZ09:/@._-[]Ǆ \t\n", max_size=60),
    _grammar_references.map(lambda s: s.upper()),
)


@settings(max_examples=400, deadline=None)
@given(_noise)
def test_any_input_raises_only_value_error_and_accepted_ones_round_trip(text):
    try:
        ref = parse_image_reference(text)
    except ValueError:
        return
    assert parse_image_reference(str(ref)) == ref
    assert str(ref).isascii()
    assert not any(char.isspace() for char in str(ref))


@settings(max_examples=300, deadline=None)
@given(_grammar_references)
def test_every_grammar_reference_is_accepted_and_round_trips(text):
    ref = parse_image_reference(text)
    assert parse_image_reference(str(ref)) == ref
    assert ref.repository == ref.repository.lower()
    if "@" in text:
        assert ref.digest == SHA256
