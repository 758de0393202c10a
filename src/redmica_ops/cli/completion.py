"""`redmica completion SHELL`: the shell's completion script, from click's own completion."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import Done

SHELLS = ("bash", "zsh", "fish")
SETUP = {
    "bash": 'eval "$(redmica completion bash)"   # in ~/.bashrc',
    "zsh": 'eval "$(redmica completion zsh)"    # in ~/.zshrc',
    "fish": "redmica completion fish > ~/.config/fish/completions/redmica.fish",
}


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@global_options(hidden=True)
@pass_app
def completion(app: Application, shell: str) -> Done:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Completes command names, options and choices. Load it once per shell session, or add the
    line to the shell's start-up file.

    \b
    Examples:
      eval "$(redmica completion bash)"
      eval "$(redmica completion zsh)"
      redmica completion fish > ~/.config/fish/completions/redmica.fish
    """
    from click.shell_completion import get_completion_class

    from redmica_ops.cli.main import cli

    completer = get_completion_class(shell)
    if completer is None:  # pragma: no cover - click ships all three
        raise click.BadParameter(f"no completion for {shell}")
    script = completer(cli, {}, "redmica", "_REDMICA_COMPLETE").source()
    return Done(
        {"shell": shell, "script": script, "setup": SETUP[shell]},
        text=lambda out: out.text(script),
    )
