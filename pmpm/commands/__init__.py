"""The ``pmpm`` commands: declared once (:mod:`.catalog`), parsed fast (:mod:`.fast`) or by typer
(:mod:`pmpm.cli`)."""
