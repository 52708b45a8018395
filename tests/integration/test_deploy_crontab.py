"""deploy/crontab, the scheduled jobs an operator installs: every line is a valid cron line
whose command is one of the service's own CLI commands with options it accepts, and every
command whose help says to run it from cron (or daily) has its line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
from flask import Flask

CRONTAB = Path(__file__).resolve().parents[2] / "deploy" / "crontab"
FLASK = ".venv/bin/flask --app app "
FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _jobs() -> list[tuple[list[str], str, str]]:
    """(time fields, user, command) of each job line."""
    jobs = []
    for line in CRONTAB.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"^[A-Z]+=", line):
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, f"not a /etc/cron.d line (5 times, user, command): {line!r}"
        jobs.append((fields[:5], fields[5], fields[6]))
    return jobs


def _resolve(app: Flask, args: list[str]) -> tuple[str, click.Command, list[str]]:
    """The CLI command ``args`` name (a group's subcommand included) and its arguments."""
    ctx = click.Context(app.cli)
    name, command, rest = app.cli.resolve_command(ctx, args)
    assert command is not None and name is not None, args
    if isinstance(command, click.Group):
        sub, command, rest = command.resolve_command(click.Context(command, parent=ctx), rest)
        assert command is not None and sub is not None, args
        name = f"{name} {sub}"
    return name, command, rest


def test_each_line_runs_a_command_of_the_service_with_options_it_accepts(app: Flask) -> None:
    jobs = _jobs()
    assert jobs
    for times, user, command in jobs:
        for value, (low, high) in zip(times, RANGES, strict=True):
            assert FIELD.match(value), f"bad cron field {value!r} in {command!r}"
            assert all(low <= int(n) <= high for n in re.findall(r"(?<!/)\b\d+", value)), value
        assert user == "cc"
        assert command.startswith("cd /srv/cc && . /etc/carbon-credits/"), command
        args = shlex.split(command.split(FLASK, 1)[1])
        name, cli_command, rest = _resolve(app, args)
        cli_command.make_context(name, rest)  # parses the options: a wrong one raises


def test_every_command_meant_for_cron_has_its_line(app: Flask) -> None:
    scheduled = {_resolve(app, shlex.split(command.split(FLASK, 1)[1]))[0]
                 for _times, _user, command in _jobs()}
    meant: set[str] = set()
    ctx = click.Context(app.cli)
    for name in app.cli.list_commands(ctx):
        command = app.cli.get_command(ctx, name)
        assert command is not None
        subcommands = ({f"{name} {sub}": command.commands[sub] for sub in command.commands}
                       if isinstance(command, click.Group) else {name: command})
        for full, sub_command in subcommands.items():
            if re.search(r"\bcron\b|\brun daily\b", sub_command.help or "", re.I):
                meant.add(full)
    assert meant >= {"expire-points", "webhook-sweep", "partitions maintain"}
    assert meant - scheduled == set()
