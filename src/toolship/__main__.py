from __future__ import annotations

from toolship.cli.main import main

main()
