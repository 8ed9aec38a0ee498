"""The ``capahub`` command group; ``serve`` is the default command.

A command's module is imported when that command runs (or ``--help`` lists them all): each
brings its own dependencies (uvicorn, the harvesters and httpx, rich's progress bars), and
importing every one of them was a tenth of `capahub apply`'s start.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
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


class _Argument(TyperArgument):
    """An argument shown as click does: ``FILES...`` in the usage line and the help, without
    typer's ``{files}`` and ``<list[Path]>``; the help text says what it is."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name


def _natural_hints(params: list[Any]) -> list[Any]:
    """Parameters whose hints read as a person writes them: ``--database URL``, ``--dry-run``
    (a flag takes no value, so it shows none, where typer printed ``<bool>``), ``--format
    [yaml|json]``, ``FILES...``. An explicit ``metavar=`` is kept."""
    for param in params:
        if isinstance(param, TyperOption) and param.metavar is None:
            if param.is_flag or param.count:
                param.metavar = ""
            elif param.type_descriptor.is_choice and param.type_descriptor.choices:
                choices = (getattr(c, "value", c) for c in param.type_descriptor.choices)
                param.metavar = f"[{'|'.join(map(str, choices))}]"
            else:
                param.metavar = (param.name or "value").upper()
        elif isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            param.__class__ = _Argument
    return params


class _Command(TyperCommand):
    """A command with natural hints (see ``_natural_hints``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _natural_hints(super().get_params(ctx))


class _Group(TyperGroup):
    """A command group with natural hints, for itself and its commands."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _natural_hints(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if type(command) is TyperCommand:  # built by typer from a sub-app's @command
            command.__class__ = _Command
        return command


class _LazyCommands(_Group):
    """The command group, building each command (as typer would) the first time it is asked
    for."""

    # ``Any``: typer's click types live in its private ``typer._click``.
    def list_commands(self, ctx: Any) -> list[str]:
        """Every command, in the documented order."""
        return list(_COMMANDS)

    _listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """``capahub --help``: the commands are listed from ``_COMMANDS``, none imported."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command ``cmd_name``, importing its module on first use."""
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            if self._listing:  # only its name and help are shown
                return TyperCommand(cmd_name, help=_COMMANDS[cmd_name][2])
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
            TyperInfo(target, name=name, help=help_text, cls=_Group),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=app.suggest_commands,
            rich_markup_mode=app.rich_markup_mode,
        )
    return get_command_from_info(
        CommandInfo(name=name, callback=target, help=help_text, cls=_Command),
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


def version() -> str:
    """The installed distribution's version (``capahub --version``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("capahub")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"capahub {version()}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _default(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the installed version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Run ``serve`` when no command is given."""
    if ctx.invoked_subcommand is None:
        from catalog.cli.serve import serve

        serve()


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
