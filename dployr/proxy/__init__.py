"""Reverse proxies: Caddy, nginx, or none; config rendered from the route table."""
