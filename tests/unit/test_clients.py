"""The client address: whose X-Forwarded-For is believed, the walk from the right, /64 keys."""

import ipaddress

import pytest

from dployr.auth.clients import LOOPBACK, TrustedProxies, identify, parse_address
from dployr.config import ConfigError
from tests.conftest import make_config

PROXY = TrustedProxies((ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")))


def client(peer, *forwarded, trusted=PROXY):
    return identify(peer, list(forwarded), trusted)


def test_no_proxy_the_peer_is_the_client():
    assert client("198.51.100.7").address == "198.51.100.7"
    assert client("198.51.100.7").key == "ip:198.51.100.7"


def test_forwarded_for_from_an_untrusted_peer_is_not_believed():
    spoofed = client("198.51.100.7", "203.0.113.9")
    assert spoofed.address == "198.51.100.7"
    # Nobody is trusted at all (the default without proxy.api_domain): never believed.
    assert client("127.0.0.1", "203.0.113.9", trusted=TrustedProxies()).address == "127.0.0.1"


def test_trusted_peer_names_the_client():
    assert client("10.0.0.2", "203.0.113.9").address == "203.0.113.9"


def test_walk_from_the_right_skips_trusted_hops():
    # client -> proxy 10.1.1.1 -> proxy 10.0.0.2 -> us; the client forged an entry first.
    forwarded = "1.1.1.1, 203.0.113.9, 10.1.1.1"
    assert client("10.0.0.2", forwarded).address == "203.0.113.9"


def test_a_forged_entry_left_of_the_client_is_ignored():
    # The client sent "X-Forwarded-For: 10.9.9.9" to look like a trusted hop; our proxy
    # appended the real address, which is what counts.
    assert client("10.0.0.2", "10.9.9.9, 203.0.113.9").address == "203.0.113.9"


def test_several_headers_are_one_list_in_order():
    assert client("10.0.0.2", "1.1.1.1", "203.0.113.9, 10.3.3.3").address == "203.0.113.9"


def test_all_hops_trusted_the_leftmost_is_the_client():
    assert client("10.0.0.2", "10.0.0.5, 10.0.0.4").address == "10.0.0.5"


def test_malformed_entry_stops_at_the_last_good_address():
    assert client("10.0.0.2", "203.0.113.9, bogus, 10.0.0.7").address == "10.0.0.7"
    assert client("10.0.0.2", "203.0.113.9, , 10.0.0.7").address == "10.0.0.7"
    assert client("10.0.0.2", "unknown").address == "10.0.0.2"
    assert client("10.0.0.2", "").address == "10.0.0.2"


def test_entries_with_ports_and_brackets():
    assert client("10.0.0.2", "203.0.113.9:4711").address == "203.0.113.9"
    assert client("10.0.0.2", "[2001:db8::1]:4711").address == "2001:db8::1"
    assert client("10.0.0.2", "[2001:db8::1]").address == "2001:db8::1"
    assert client("10.0.0.2", "[2001:db8::1]x").address == "10.0.0.2"
    assert client("10.0.0.2", "203.0.113.9:http").address == "10.0.0.2"


def test_ipv6_clients_are_keyed_by_their_64():
    one = client("2001:db8:1:2:aaaa::1")
    other = client("2001:db8:1:2:ffff:ffff:ffff:ffff")
    neighbour = client("2001:db8:1:3::1")
    assert one.address == "2001:db8:1:2:aaaa::1"
    assert one.key == other.key == "ip:2001:db8:1:2::/64"
    assert neighbour.key != one.key
    # Through a proxy too.
    assert client("fd00::5", "2001:db8:1:2::42").key == "ip:2001:db8:1:2::/64"


def test_ipv4_mapped_addresses_are_ipv4():
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    mapped = client("::ffff:203.0.113.9")
    assert (mapped.address, mapped.key) == ("203.0.113.9", "ip:203.0.113.9")
    assert client("::ffff:10.0.0.2", "203.0.113.9").address == "203.0.113.9"
    assert client("10.0.0.2", "::ffff:203.0.113.9").key == "ip:203.0.113.9"


def test_peer_that_is_not_an_address():
    assert client(None).key == "ip:unknown"
    assert client("/run/dployr.sock").address == "/run/dployr.sock"


def test_parse_address():
    assert parse_address(" 192.0.2.1 ") == ipaddress.ip_address("192.0.2.1")
    assert parse_address("::1") == ipaddress.ip_address("::1")
    bad_ones = ("", "x", "1.2.3", "1.2.3.4:", "[::1", "[::1]:", "1.2.3.4:5:6", "1.2.3.4:\u00b2")
    for bad in (*bad_ones, "[::1]:123456", "\uff11.2.3.4"):
        assert parse_address(bad) is None, bad


def test_trusted_networks_from_config(tmp_path):
    def trusted(**sections):
        return TrustedProxies.from_config(make_config(tmp_path, **sections)).networks

    assert trusted() == ()  # no proxy in front: nobody's header is believed
    assert trusted(proxy={"api_domain": "api.test"}) == LOOPBACK
    # A daemon listening on a LAN address is dialled from that address by a local proxy.
    on_lan = trusted(proxy={"api_domain": "api.test"}, server={"host": "10.0.0.5"})
    assert on_lan == (*LOOPBACK, ipaddress.ip_network("10.0.0.5/32"))
    for host in ("0.0.0.0", "::", "::1", "localhost"):  # noqa: S104
        assert trusted(proxy={"api_domain": "api.test"}, server={"host": host}) == LOOPBACK
    assert trusted(
        proxy={"api_domain": "api.test"}, server={"trusted_proxies": ["10.0.0.0/8"]}
    ) == (ipaddress.ip_network("10.0.0.0/8"),)
    # strict=False: a host address with a prefix names its network.
    assert trusted(server={"trusted_proxies": ["192.168.1.7/24", "::1"]}) == (
        ipaddress.ip_network("192.168.1.0/24"),
        ipaddress.ip_network("::1/128"),
    )
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        trusted(server={"trusted_proxies": ["10.0.0.0/33"]})


def test_loopback_default_trusts_the_local_proxy():
    local = TrustedProxies(LOOPBACK)
    assert identify("127.0.0.1", ["203.0.113.9"], local).address == "203.0.113.9"
    assert identify("::1", ["2001:db8::9"], local).key == "ip:2001:db8::/64"
    assert identify("203.0.113.9", ["127.0.0.1"], local).address == "203.0.113.9"
