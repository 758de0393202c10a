"""The typed application object that click passes to every command (ctx.obj)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from redmica_ops.cli import terminal

if TYPE_CHECKING:
    from redmica_ops.aws import ClientFactory
    from redmica_ops.cli.output import Output
    from redmica_ops.cli.progress import StatusLine
    from redmica_ops.runs.pacing import Cancellation, Clock
    from redmica_ops.settings import Settings
    from redmica_ops.workspace import AwsWorkspace


class Application:
    """Holds what the command line said and builds settings, output and AWS access lazily.

    Flags may be given before or after the sub-command; each one lands in `overrides`.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        client_factory: Callable[[Settings], ClientFactory] | None = None,
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.overrides: dict[str, Any] = {}
        self.config_path: str | None = None
        self.output_format = "text"
        self.debug = False
        self._client_factory = client_factory
        self._settings: Settings | None = None
        self._workspace: AwsWorkspace | None = None
        self._status_line: StatusLine | None = None
        # Swappable for tests: how `tenant edit` runs an editor and how we detect a person.
        self.edit_text: Callable[[str], str | None] = terminal.run_editor
        self.interactive: Callable[[], bool] = sys.stdin.isatty
        self.ask: Callable[[str], bool] = terminal.ask
        self.stdout_is_terminal: Callable[[], bool] = sys.stdout.isatty
        # How a secret is asked for on a terminal: a prompt, and nothing echoed.
        self.read_secret: Callable[[str], str] = terminal.read_secret
        # How `entrypoint` replaces this process (tests record the call instead).
        self.exec_process: Callable[[list[str], Mapping[str, str]], None] = terminal.exec_process
        # Long runs take their time from here (tests pass a FakeClock); None: real time.
        self.make_clock: Callable[[Cancellation], Clock] | None = None

    @property
    def json(self) -> bool:
        return self.output_format == "json"

    @property
    def output(self) -> Output:
        # Imported here: `redmica --help` never renders a result (cli/output.py: 13.7 M
        # instructions of its start-up).
        from redmica_ops.cli.output import Output

        return Output(json_mode=self.json)

    @property
    def settings(self) -> Settings:
        # Imported here: `redmica --help` never needs settings, and must start fast.
        from redmica_ops.settings.loading import load_settings

        if self._settings is None:
            self._settings = load_settings(self.overrides, self.env, self.config_path)
        return self._settings

    def override(self, name: str, value: Any) -> None:
        """Set a setting from code (as if given as a flag); settings are resolved again."""
        self.overrides[name] = value
        self._settings = None
        self._workspace = None

    def workspace(self) -> AwsWorkspace:
        """What the library's verbs need, built from this command line (see workspace.py)."""
        # Imported here: only a command that acts needs them; `redmica --help` and `tenant
        # validate` never do.
        from redmica_ops.cli.progress import ProgressPrinter, StatusLine
        from redmica_ops.workspace import AwsWorkspace

        if self._workspace is None:
            self._status_line = StatusLine()
            self._workspace = AwsWorkspace(
                self.settings,
                self._client_factory,
                make_clock=self.make_clock,
                message=self._status_line.message,
                status=self._status_line.status,
                progress=ProgressPrinter,
            )
        return self._workspace

    def close(self) -> None:
        """End what outlives a command's body: the live status line on a terminal."""
        if self._status_line is not None:
            self._status_line.close()
            self._status_line = None
