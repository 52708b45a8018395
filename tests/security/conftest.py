"""Print the security suite's figures (requests sent, refused, accepted) at the end."""

from __future__ import annotations

from _pytest.terminal import TerminalReporter

from tests.faults.figures import summary_lines


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    lines = summary_lines("security")
    if lines:
        terminalreporter.section("security figures")
        for line in lines:
            terminalreporter.write_line(line)
