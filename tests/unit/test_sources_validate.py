"""Remote, branch and path checks: every accepted form, every refused trick."""

import pytest

from dployr.errors import ValidationError
from dployr.sources.validate import (
    SERVICE_NAME,
    Remote,
    check_branch,
    check_local_path,
    check_remote_host,
    parse_remote,
)


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port"),
    [
        ("https://github.com/user/repo", "https", "github.com", None),
        ("https://github.com/user/repo.git", "https", "github.com", None),
        ("http://gitea.lan:3000/team/app.git", "http", "gitea.lan", 3000),
        ("ssh://git@github.com/user/repo.git", "ssh", "github.com", None),
        ("ssh://git@example.com:2222/srv/app.git", "ssh", "example.com", 2222),
        ("git://127.0.0.1:9418/app", "git", "127.0.0.1", 9418),
        ("git@github.com:user/repo.git", "ssh", "github.com", None),
        ("deploy@10.0.0.5:/srv/git/app.git", "ssh", "10.0.0.5", None),
        ("https://h/a-b/c_d", "https", "h", None),
    ],
)
def test_accepts_the_four_schemes_and_scp_style(url, scheme, host, port):
    assert parse_remote(url) == Remote(url, scheme, host, port)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "must be 1-2048 characters"),
        ("https://h/" + "a" * 2040, "must be 1-2048 characters"),
        ("ext::sh -c touch /tmp/x", "transport helpers (ext::, fd::) are not allowed"),
        ("ext::sh", "transport helpers (ext::, fd::) are not allowed"),
        ("fd::3", "transport helpers (ext::, fd::) are not allowed"),
        ("https::github.com/x", "transport helpers (ext::, fd::) are not allowed"),
        ("-uhttps://x", "must not start with '-'"),
        ("--upload-pack=touch x", "must not start with '-'"),
        ("https://h/x\n", "must not contain spaces or control characters"),
        ("https://h/x\x00", "must not contain spaces or control characters"),
        ("https://h/\tx", "must not contain spaces or control characters"),
        ("https://h/x\x7f", "must not contain spaces or control characters"),
        ("https://h/a b", "must not contain spaces or control characters"),
        ("https://h/a\u00a0b", "must not contain spaces or control characters"),
    ],
)
def test_refuses_helpers_options_and_control_characters(url, reason):
    with pytest.raises(ValidationError) as refused:
        parse_remote(url)
    assert refused.value.details == {"field": "remote", "reason": reason}
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc",
        "/etc/passwd",
        "./repo",
        "ftp://h/x",
        "HTTPS://github.com/x",
        "git+ssh://h/x",
        "github.com:user/repo",  # scp-style needs user@
        "https:/h/x",
    ],
)
def test_refuses_files_and_other_schemes(url):
    with pytest.raises(ValidationError) as refused:
        parse_remote(url)
    assert refused.value.details is not None
    assert refused.value.details["field"] == "remote"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ssh://-oProxyCommand=touch%20x/y", "has an invalid host"),
        ("git@-oProxyCommand=x:y", "has an invalid host"),
        ("https:///path", "has an invalid host"),
        ("https://user@/path", "credentials belong in a credential (credential_id), not the URL"),
        ("https://h_x/path", "has an invalid host"),
        ("https://h%2fx/path", "has an invalid host"),
        ("https://a..b/path", "has an invalid host"),
        ("https://[::1]/x", "ipv6 literals are not supported; use a host name"),
        (
            "https://user:pw@host/x",
            "credentials belong in a credential (credential_id), not the URL",
        ),
        (
            "http://x:ghp_token@github.com/x",
            "credentials belong in a credential (credential_id), not the URL",
        ),
        # A token is often sent as the user name: over http(s) a user name is a credential too.
        (
            "https://ghp_abc123@github.com/u/r",
            "credentials belong in a credential (credential_id), not the URL",
        ),
        ("git://deploy@h/x", "credentials belong in a credential (credential_id), not the URL"),
        ("https://h:0/x", "port must be 1-65535"),
        ("https://h:65536/x", "port must be 1-65535"),
        ("https://h:http/x", "port must be 1-65535"),
        ("https://h/-x", "path components must not start with '-'"),
        ("ssh://git@h/srv/--upload-pack=x", "path components must not start with '-'"),
        ("git@h:-x", "path components must not start with '-'"),
        ("git@h:a/-x", "path components must not start with '-'"),
    ],
)
def test_refuses_bad_hosts_credentials_ports_and_option_paths(url, reason):
    with pytest.raises(ValidationError) as refused:
        parse_remote(url)
    assert refused.value.details == {"field": "remote", "reason": reason}


@pytest.mark.parametrize(
    "branch", ["main", "feature/x-1", "release-2.0", "a.b", "v1.0/hotfix", "ü", "x" * 255]
)
def test_accepts_ordinary_branches(branch):
    assert check_branch(branch) == branch


@pytest.mark.parametrize(
    "branch",
    [
        "",
        "x" * 256,
        "--upload-pack=touch x",
        "-x",
        "/x",
        "a..b",
        "a b",
        "a\tb",
        "a\x00b",
        "a\x7fb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "x.lock",
        "a/x.lock/b",
        "@{u}",
        "a@{1}",
        "@",
        ".hidden",
        "a/.b",
        "a/",
        "a.",
        "a//b",
    ],
)
def test_refuses_what_git_check_ref_format_refuses(branch):
    with pytest.raises(ValidationError) as refused:
        check_branch(branch)
    assert refused.value.details is not None
    assert refused.value.details["field"] == "branch"


def test_local_paths():
    assert str(check_local_path("/srv/my app")) == "/srv/my app"
    for bad in ["", "srv/app", "/srv/../etc", "/srv/a\x00", "/srv/a\nb", "/" + "a" * 4096]:
        with pytest.raises(ValidationError) as refused:
            check_local_path(bad)
        assert refused.value.details is not None
        assert refused.value.details["field"] == "path"


def test_service_name_pattern():
    assert SERVICE_NAME.match("my-app-2")
    assert not SERVICE_NAME.match("-app")
    assert not SERVICE_NAME.match("App")
    assert not SERVICE_NAME.match("a" * 64)


PRIVATE = "resolves to a private or loopback address (set runtime.allow_private_remotes to allow)"
METADATA = "resolves to a link-local or metadata address"


def remote(host: str) -> Remote:
    return Remote(f"https://{host}/x", "https", host, None)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.1", "192.168.1.2", "172.16.0.1", "100.64.0.1", "0.0.0.0", "224.0.0.1"],  # noqa: S104
)
async def test_private_addresses_need_allow_private(host):
    with pytest.raises(ValidationError) as refused:
        await check_remote_host(remote(host), allow_private=False)
    assert refused.value.details == {"field": "remote", "reason": PRIVATE}
    await check_remote_host(remote(host), allow_private=True)


@pytest.mark.parametrize("host", ["localhost", "2130706433"])  # 2130706433 is 127.0.0.1
async def test_names_that_resolve_to_loopback_need_allow_private(host):
    with pytest.raises(ValidationError) as refused:
        await check_remote_host(remote(host), allow_private=False)
    assert refused.value.details == {"field": "remote", "reason": PRIVATE}
    await check_remote_host(remote(host), allow_private=True)


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "169.254.1.1",
        "100.100.100.200",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    ],
)
async def test_link_local_and_metadata_are_refused_even_when_private_is_allowed(host):
    for allow_private in (False, True):
        with pytest.raises(ValidationError) as refused:
            await check_remote_host(remote(host), allow_private=allow_private)
        assert refused.value.details == {"field": "remote", "reason": METADATA}


async def test_ipv4_mapped_loopback_is_private():
    with pytest.raises(ValidationError) as refused:
        await check_remote_host(remote("::ffff:127.0.0.1"), allow_private=False)
    assert refused.value.details == {"field": "remote", "reason": PRIVATE}


async def test_public_literal_passes():
    await check_remote_host(remote("140.82.112.3"), allow_private=False)


async def test_a_name_that_does_not_resolve():
    with pytest.raises(ValidationError) as refused:
        await check_remote_host(remote("nonexistent.invalid"), allow_private=True)
    assert refused.value.details == {"field": "remote", "reason": "host does not resolve"}
