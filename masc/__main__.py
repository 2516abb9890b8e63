"""Allow ``python -m masc`` to behave exactly like the ``masc`` console script."""

from masc.cli.masc import main

raise SystemExit(main())
