"""The ``capahub`` command group; ``serve`` is the default command."""

from __future__ import annotations

import typer

from catalog.cli import apply, export, harvest, reindex, schema, serve

app = typer.Typer(
    name="capahub",
    help="capahub: business-capability catalog and data hub.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve", help="Run the hub (GraphQL API and playground).")(serve.serve)
app.command("schema", help="Print the GraphQL schema (SDL); equals schema.graphql.")(schema.schema)
app.command("apply", help="Apply YAML/JSON catalog files to the catalog.")(apply.apply)
app.command("export", help="Export the whole catalog as a re-applicable document.")(export.export)
app.command("harvest", help="Harvest an OpenAPI, GraphQL, SQL or Backstage source.")(
    harvest.harvest
)
app.command("reindex", help="Rebuild the search index from the catalog.")(reindex.reindex)


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    """Run ``serve`` when no command is given."""
    if ctx.invoked_subcommand is None:
        serve.serve()


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
