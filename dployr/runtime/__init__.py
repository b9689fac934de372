"""Runtimes: where a release runs (Docker container, systemd unit, supervised process)."""
