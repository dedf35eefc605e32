from __future__ import annotations

from pmpm.fastpath import main

main()
