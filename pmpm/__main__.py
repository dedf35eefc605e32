from __future__ import annotations

from pmpm.cli import main

main()
