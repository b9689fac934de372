"""sd_notify(3): tell systemd (Type=notify) that the daemon listens; nothing outside systemd."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to $NOTIFY_SOCKET; False when there is none to send to."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    elif not address.startswith("/"):  # unset, or a vsock address (a VM's host): not ours
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        # A datagram to a local socket goes at once or not at all: never wait on the loop.
        sock.setblocking(False)
        try:
            sock.sendto(state.encode("utf-8"), address)
        except OSError:
            return False
    return True
