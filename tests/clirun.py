"""Run the ``automed`` command in this process, as a user would from a shell."""

from __future__ import annotations

import sys

from automed import cli as cli_module


def run_cli(monkeypatch, capsys, *argv: str) -> tuple[int | None, str, str]:
    """``(exit code or None, stdout, stderr)`` of ``automed ARGV...``."""
    monkeypatch.setattr(sys, "argv", ["automed", *argv])
    code = None
    try:
        cli_module.main()
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
