"""All SQL lives here: the database handle, migrations and one module per aggregate."""
