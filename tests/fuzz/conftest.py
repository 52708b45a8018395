"""Print the fuzzing figures (requests, statuses, failures) at the end of the run."""

from __future__ import annotations

from _pytest.terminal import TerminalReporter

from tests.faults.figures import summary_lines


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    lines = summary_lines("fuzz")
    if lines:
        terminalreporter.section("fuzzing figures")
        for line in lines:
            terminalreporter.write_line(line)
