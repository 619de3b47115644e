"""docs/cli.md says what `--help` says: every option of every command is documented in its
section, and every option a section's tables document exists."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from samembed.cli import app

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
OPTION = re.compile(r"--[a-z][a-z0-9-]*")


def _sections() -> dict[str, str]:
    """Command name -> the text of its section (`## \\`samembed NAME ...\\``)."""
    parts = re.split(r"^## `samembed ([a-z-]+)[^`]*`", DOCS.read_text(), flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _options() -> dict[str, set[str]]:
    """Command name -> its long options (the first name of each, `--x/--no-x` as `--x`)."""
    group = typer.main.get_command(app)
    out = {}
    for name, command in group.commands.items():
        out[name] = {next(o for o in p.opts if o.startswith("--")) for p in command.params
                     if any(o.startswith("--") for o in p.opts) and o_not_help(p)}
    return out


def o_not_help(param) -> bool:
    return "--help" not in param.opts


def test_every_command_and_option_is_documented_and_every_documented_option_exists():
    sections, options = _sections(), _options()
    missing_commands = sorted(set(options) - set(sections))
    assert not missing_commands, f"commands without a section in docs/cli.md: {missing_commands}"
    problems = []
    for name, opts in options.items():
        text = sections[name]
        documented = set(OPTION.findall(text))
        problems += [f"{name}: {o} is not in docs/cli.md" for o in sorted(opts - documented)]
        in_tables = {o for line in text.splitlines() if line.startswith("|")
                     for o in OPTION.findall(line.split("|")[1])}
        problems += [f"{name}: docs/cli.md documents {o}, which the command does not have"
                     for o in sorted(in_tables - opts - {"--no-" + x[2:] for x in opts})]
    assert not problems, problems
