"""The ``capahub`` command group; ``serve`` is the default command.

A command's module is imported when that command runs (or ``--help`` lists them all): each
brings its own dependencies (uvicorn, the harvesters and httpx, rich's progress bars), and
importing every one of them was a tenth of `capahub apply`'s start.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

#: name -> (module, function or typer.Typer group, help), in the order ``capahub --help``
#: lists them.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("catalog.cli.serve", "serve", "Run the hub (GraphQL API and playground)."),
    "schema": (
        "catalog.cli.schema",
        "schema",
        "Print the GraphQL schema (SDL); equals schema.graphql.",
    ),
    "apply": ("catalog.cli.apply", "apply", "Apply YAML/JSON catalog files to the catalog."),
    "export": (
        "catalog.cli.export",
        "export",
        "Export the whole catalog as a re-applicable document.",
    ),
    "harvest": (
        "catalog.cli.harvest",
        "harvest",
        "Harvest an OpenAPI, GraphQL, SQL or Backstage source.",
    ),
    "reindex": ("catalog.cli.reindex", "reindex", "Rebuild the search index from the catalog."),
    # A group: the module's ``app`` is a typer.Typer with its own commands.
    "token": ("catalog.cli.token", "app", "Create, list and revoke hub API tokens for machines."),
}


class _LazyCommands(TyperGroup):
    """The command group, building each command (as typer would) the first time it is asked
    for."""

    # ``Any``: typer's click types live in its private ``typer._click``.
    def list_commands(self, ctx: Any) -> list[str]:
        """Every command, in the documented order."""
        return list(_COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command ``cmd_name``, importing its module on first use."""
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            self.add_command(_build(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """As typer does; for a name that is no command, every command is built first, so
        that "Did you mean ...?" sees them all."""
        if args and args[0] not in _COMMANDS:
            for name in _COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _build(name: str) -> Any:
    module, attribute, help_text = _COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        return get_group_from_info(
            TyperInfo(target, name=name, help=help_text),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=app.suggest_commands,
            rich_markup_mode=app.rich_markup_mode,
        )
    return get_command_from_info(
        CommandInfo(name=name, callback=target, help=help_text),
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
    )


app = typer.Typer(
    name="capahub",
    help="capahub: business-capability catalog and data hub.",
    cls=_LazyCommands,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    """Run ``serve`` when no command is given."""
    if ctx.invoked_subcommand is None:
        from catalog.cli.serve import serve

        serve()


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
