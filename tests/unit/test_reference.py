"""Image references: Docker's grammar, normalised the way the engine reads them."""

import pytest

from dployr.errors import ValidationError
from dployr.runtime.reference import parse_image


@pytest.mark.parametrize(
    ("text", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io/library/alpine", None, None),
        ("alpine:3.19", "docker.io/library/alpine", "3.19", None),
        ("dployr/svc_x:4", "docker.io/dployr/svc_x", "4", None),
        ("docker.io/dployr/svc_x:4", "docker.io/dployr/svc_x", "4", None),
        ("index.docker.io/dployr/svc_x:4", "docker.io/dployr/svc_x", "4", None),
        ("localhost/app", "localhost/app", None, None),
        ("localhost:5000/a/b:c", "localhost:5000/a/b", "c", None),
        ("Registry.Example.com/x", "Registry.Example.com/x", None, None),
        ("a-b__c/e---f.g", "docker.io/a-b__c/e---f.g", None, None),
        ("x@sha256:" + "0" * 64, "docker.io/library/x", None, "sha256:" + "0" * 64),
    ],
)
def test_valid(text, repository, tag, digest):
    ref = parse_image(text)
    assert (ref.repository, ref.tag, ref.digest) == (repository, tag, digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alpine@sha256:zz",
        "alpine@sha256:" + "0" * 65,
        "alpine@sha999:" + "0" * 64,
        "alpine:a:b",
        "Alpine",
        "a..b",
        "a/",
        "/a",
        "bad_host.x/y",  # a '.' makes the first component a host, where '_' is not allowed
        "-x.com/a",
        "x" * 256,
        "deadbeef",
        "sha512:abc",
    ],
)
def test_invalid(text):
    with pytest.raises(ValidationError) as caught:
        parse_image(text)
    assert caught.value.details == {"field": "image", "reason": caught.value.details["reason"]}
