"""Moving a host: one archive with the database and the key files, and its restore."""
