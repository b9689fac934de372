"""`python -m dployr` is the `dployr` command."""

from dployr.cli import main

raise SystemExit(main())
