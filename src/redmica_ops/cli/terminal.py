"""How the CLI meets its surroundings: exec a program, run the editor, ask yes or no, read a
secret without echo. The defaults of `Application`'s swappable callables (tests swap them)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping

import click

from redmica_ops.errors import CannotExecute, UsageError


def exec_process(argv: list[str], env: Mapping[str, str]) -> None:
    try:
        # exec on purpose: the container's main process becomes Apache / the migration.
        os.execvpe(argv[0], argv, dict(env))  # noqa: S606
    except OSError as exc:
        raise CannotExecute(
            f"cannot run {argv[0]!r}: {exc.strerror}",
            "check the command and the image's PATH",
            not_found=exc.errno == errno.ENOENT,
        ) from None


def run_editor(text: str) -> str | None:
    if not (os.environ.get("VISUAL") or os.environ.get("EDITOR")) and not (
        sys.stdin.isatty() and sys.stdout.isatty()
    ):
        # click would fall back to vi, which without a terminal hangs or fills the log with
        # escape codes: say what to do instead.
        raise UsageError(
            "no editor: VISUAL and EDITOR are not set and this is not a terminal; "
            "nothing was written",
            "set EDITOR (e.g. EDITOR=nano), or use `redmica tenant show ID > FILE` then "
            "`redmica tenant update ID -f FILE`",
        )
    try:
        return click.edit(text, extension=".yaml", require_save=True)
    except click.ClickException as exc:
        # click says "Error: vim: Editing failed"; say it our way, with what to do.
        raise UsageError(
            f"the editor failed ({exc.format_message()}); nothing was written",
            "set VISUAL or EDITOR to an editor that works, e.g. EDITOR=nano",
        ) from None


def ask(question: str) -> bool:
    """Ask on stderr, read one line from stdin; only y/yes is a yes (EOF is a no)."""
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


def read_secret(prompt: str) -> str:
    # Here, not at the top: this module is on `redmica --help`'s path, which never asks for a
    # secret (getpass pulls termios: 1.3 M instructions).
    import getpass

    return getpass.getpass(prompt)
