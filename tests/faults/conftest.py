"""The fault suite's marker and its figures in the terminal summary."""

from __future__ import annotations

import pytest
from _pytest.terminal import TerminalReporter

from tests.faults.figures import summary_lines


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real servers and injects faults (about a minute each); "
                   "runs in CI too, deselect locally with -m 'not slow'")


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    lines = summary_lines("faults")
    if lines:
        terminalreporter.section("fault injection figures")
        for line in lines:
            terminalreporter.write_line(line)
