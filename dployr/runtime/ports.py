"""Loopback ports for the instances of every target on this host."""

from __future__ import annotations

import socket


def free_loopback_port() -> int:
    """A port nothing listens on right now (the instance binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
