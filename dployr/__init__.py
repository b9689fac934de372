"""dployr: a small self-hosted deploy agent."""

__version__ = "0.1.0"
