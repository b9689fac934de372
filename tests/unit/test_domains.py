"""normalize_domain and check_path_prefix: what may reach a Caddyfile or an nginx block."""

from __future__ import annotations

import pytest

from dployr.errors import ValidationError
from dployr.proxy.domains import check_path_prefix, default_tls, normalize_domain


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("App.Example.COM", "app.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: ß is kept, not folded to "ss"
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("*.Example.com", "*.example.com"),
        ("app.localhost", "app.localhost"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        (("a" * 62 + ".") * 4 + "b", ("a" * 62 + ".") * 4 + "b"),  # 253 characters
    ],
)
def test_good_domains_are_normalized(given: str, stored: str) -> None:
    assert normalize_domain(given) == stored


@pytest.mark.parametrize(
    "domain",
    [
        "evil.com {\n}\n:2019 {",
        "a b.com",
        "x.com;include /etc/passwd",
        "bad.com:8080",
        "-bad.com",
        "bad-.com",
        "a" * 300,
        ("a" * 59 + ".") * 5 + "com",
        "a" * 64 + ".com",
        "",
        "*",
        "*.",
        "*.*.x.com",
        "a.*.com",
        "a..b.com",
        ".a.com",
        "a.com.",
        "a_b.com",
        "x.com\n",
        "x.com\t",
        'x"y.com',
        "x'y.com",
        "x{y.com",
        "x#y.com",
        "x/y.com",
        "user@x.com",
        "x$y.com",
        "xn--zz.com",  # an A-label that is not punycode
        "a\u200bb.com",  # zero-width space: would vanish in IDNA's mapping
        "\u202eexample.com",  # right-to-left override
        "a\u00a0b.com",  # no-break space
        "a\u3002b.com",  # an ideographic full stop inside a label
        "ä" * 60 + ".com",  # a label too long once punycode
        None,
        42,
    ],
)
def test_bad_domains_are_refused(domain: object) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_domain(domain)
    assert caught.value.details == {**(caught.value.details or {}), "field": "domain"}


@pytest.mark.parametrize(
    ("given", "stored"),
    [("/", "/"), ("/api", "/api"), ("/api/", "/api"), ("/a-b_c.d~e", "/a-b_c.d~e")],
)
def test_good_path_prefixes(given: str, stored: str) -> None:
    assert check_path_prefix(given) == stored


@pytest.mark.parametrize(
    "prefix",
    ["", "api", "/a b", "/{x}", "/a}", '/"q', "/'q", "/`q", "/..", "/a/../b", "/a..b", "/a//b",
     "/./a", "/a/.", "/x;y", "/x#y", "/x?y", "/x$y", "/x\\y", "/a*", "/%2e%2e", "/x\n",
     "/" + "a" * 256, None],
)  # fmt: skip
def test_bad_path_prefixes_are_refused(prefix: object) -> None:
    with pytest.raises(ValidationError) as caught:
        check_path_prefix(prefix)
    assert caught.value.details is not None and caught.value.details["field"] == "path_prefix"


def test_localhost_names_default_to_plain_http() -> None:
    assert default_tls("app.localhost") == default_tls("localhost") == "off"
    assert default_tls("app.example.com") == default_tls("localhost.example.com") == "auto"


def test_nginx_file_names_fit_any_valid_domain() -> None:
    from dployr.proxy.nginx_files import file_name

    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(normalize_domain(longest)) == 253
    name = file_name(longest)
    assert len(f".{name}.tmp".encode()) <= 255 and name.startswith("dployr-aaa")
    assert file_name(longest[:-1] + "e") != name
    assert file_name("*.x.com") == "dployr-_.x.com.conf"
