"""Authentication: password hashing, JWT access tokens, refresh and API tokens, rate limits."""
