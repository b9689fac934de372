"""Managed databases (SPEC §14): engines, their containers, backups and links."""
