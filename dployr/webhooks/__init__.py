"""Outbound webhooks: the address guard, signatures and the delivery worker (SPEC §7)."""
