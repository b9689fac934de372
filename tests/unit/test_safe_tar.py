"""A source archive is unpacked only when no member reaches outside the release dir."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dployr.runtime.protocol import RuntimeFailure
from dployr.runtime.safe_tar import Links, extract_source, member_problem, through_link


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_member("/etc/passwd"), "an absolute path"),
        (_member("../escape"), "a path with '..'"),
        (_member("a/../../escape"), "a path with '..'"),
        (_member("dev", tarfile.CHRTYPE), "a device or FIFO"),
        (_member("blk", tarfile.BLKTYPE), "a device or FIFO"),
        (_member("fifo", tarfile.FIFOTYPE), "a device or FIFO"),
        (_member("link", tarfile.SYMTYPE, "/etc/shadow"), "a link to an absolute path"),
        (_member("a/link", tarfile.SYMTYPE, "../../x"), "a link that leaves the tree"),
        (_member("hard", tarfile.LNKTYPE, "../x"), "a link that leaves the tree"),
    ],
)
def test_bad_members_are_named(member: tarfile.TarInfo, why: str) -> None:
    problem = member_problem(member)
    assert problem is not None and problem.endswith(why)


@pytest.mark.parametrize(
    "member",
    [
        _member("app.py"),
        _member("src", tarfile.DIRTYPE),
        _member("a/b/link", tarfile.SYMTYPE, "../c"),
        _member("hard", tarfile.LNKTYPE, "app.py"),
    ],
)
def test_good_members_pass(member: tarfile.TarInfo) -> None:
    assert member_problem(member) is None


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def test_a_good_archive_unpacks(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "ok.tar",
        [
            (_member("app.py"), b"print(1)\n"),
            (_member("lib/link", tarfile.SYMTYPE, "../app.py"), b""),
        ],
    )
    dest = tmp_path / "out"
    dest.mkdir()
    extract_source(archive, dest)
    assert (dest / "app.py").read_text() == "print(1)\n"
    assert (dest / "lib" / "link").read_text() == "print(1)\n"


def test_a_bad_archive_writes_nothing(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "bad.tar",
        [(_member("app.py"), b"x"), (_member("../../evil"), b"boom")],
    )
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(RuntimeFailure, match=r"refused: \.\./\.\./evil: a path with '\.\.'"):
        extract_source(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path.parent / "evil").exists()


def test_nothing_is_written_through_a_link(tmp_path: Path) -> None:
    # `s -> .` puts `s/up -> ../outside` at ./up, pointing out of the tree: each link passes
    # the lexical checks alone. Refused whole.
    archive = _archive(
        tmp_path / "chain.tar",
        [
            (_member("s", tarfile.SYMTYPE, "."), b""),
            (_member("s/up", tarfile.SYMTYPE, "../outside"), b""),
            (_member("up/evil"), b"boom"),
        ],
    )
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(RuntimeFailure, match="s/up: a member inside a link"):
        extract_source(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_member("a/" * 2048 + "f"), "a path over 4096 bytes"),
        (_member("d/" + "n" * 256), "a path component over 255 bytes"),
        (_member("l", tarfile.SYMTYPE, "x/" * 2049), "a link target a path over 4096 bytes"),
        (_member("l", tarfile.SYMTYPE, "t" * 256), "a link target a path component over 255"),
    ],
)
def test_names_past_path_max_or_name_max_are_refused(member: tarfile.TarInfo, why: str) -> None:
    """No checkout holds one, and each costs the checks time in proportion to its length."""
    problem = member_problem(member)
    assert problem is not None and why in problem
    assert len(problem) < 400  # the name is cut in the message


def test_the_longest_names_linux_allows_pass() -> None:
    name = "/".join(["n" * 255] * 16)  # 4095 bytes
    assert member_problem(_member(name)) is None
    assert member_problem(_member("l", tarfile.SYMTYPE, "é" * 127)) is None  # 254 bytes


def test_a_deep_name_costs_one_step_per_component() -> None:
    """through_link once rebuilt every prefix of a name: quadratic, minutes for a 200 KB
    name. Now a tree walk (member_problem refuses such a name first anyway)."""
    links = Links()
    assert through_link(_member("d", tarfile.SYMTYPE, "sub"), links) is None
    deep = _member("a/" * 200_000 + "f")
    assert through_link(deep, links) is None
    assert through_link(_member("d/" + "a/" * 200_000 + "f"), links) is not None


@pytest.mark.parametrize(
    "links",
    [
        [("a", "."), ("b", "a/..")],  # `a/..` reads as `.`; on disk it is the tree's parent
        [("b", "a/.."), ("a", ".")],  # the same, the link it climbs out of coming later
        [("d/b", "../d/x/../.."), ("d/x", ".")],
        [("h", "x/../y")],
    ],
    ids=["after", "before", "nested", "plain"],
)
def test_a_link_climbing_out_of_a_name_it_gave_is_refused(
    tmp_path: Path, links: list[tuple[str, str]]
) -> None:
    members = [(_member(name, tarfile.SYMTYPE, target), b"") for name, target in links]
    archive = _archive(tmp_path / "climb.tar", [*members, (_member("index.html"), b"hi")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(RuntimeFailure, match=r"a link target with '\.\.' after a name"):
        extract_source(archive, dest)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    "target", ["../lib/run", "../../bin/x/y", "./sub/file", "sub//file", "..//x"]
)
def test_links_that_climb_first_pass(target: str) -> None:
    assert member_problem(_member("a/b/c/link", tarfile.SYMTYPE, target)) is None


@pytest.mark.parametrize("filtered", [True, False])
def test_the_disk_is_checked_as_members_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filtered: bool
) -> None:
    """The lexical checks see only the archive; a link already on disk (here in the release
    dir) is caught as the member is written, by Python's `data` filter or, on a Python
    without it (Debian 12's 3.11.2), by the same check made by hand."""
    if not filtered:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = _archive(tmp_path / "ok.tar", [(_member("lib/app.py"), b"print(1)\n")])
    dest = tmp_path / "out"
    dest.mkdir()
    extract_source(good, dest)
    assert (dest / "lib" / "app.py").read_text() == "print(1)\n"
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "pre").symlink_to(outside)
    bad = _archive(tmp_path / "bad.tar", [(_member("pre/evil"), b"boom")])
    with pytest.raises(RuntimeFailure, match="pre/evil"):
        extract_source(bad, dest)
    assert list(outside.iterdir()) == []
