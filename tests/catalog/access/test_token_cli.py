"""``capahub token``: create, list and revoke through typer's CliRunner."""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog.access.principal import Principal, Role
from catalog.access.tokens import HubTokens
from catalog.cli import app
from metadata.errors import UnauthenticatedError
from metadata.model import Kind, Lifecycle, NodeRecord
from metadata.store import Store

runner = CliRunner()


def _team(team_id: str) -> NodeRecord:
    now = datetime.now(UTC)
    return NodeRecord(
        id=team_id,
        kind=Kind.TEAM,
        key=team_id.split(":", 1)[1],
        name=team_id,
        description=None,
        tags=(),
        lifecycle=Lifecycle.ACTIVE,
        owner=None,
        properties=None,
        attributes=(),
        version=1,
        created_at=now,
        updated_at=now,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A catalog file with one team, team:payments."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"

    async def seed() -> None:
        store = await Store.open(url)
        try:
            async with store.transaction() as tx:
                await tx.insert_nodes([_team("team:payments")])
        finally:
            await store.close()

    asyncio.run(seed())
    return url


def _verify(db: str, token: str) -> Principal:
    async def go() -> Principal:
        store = await Store.open(db)
        try:
            return await HubTokens(store).verify(token)
        finally:
            await store.close()

    return asyncio.run(go())


def _create(db: str, *args: str) -> str:
    result = runner.invoke(app, ["token", "create", *args, "--database", db])
    assert result.exit_code == 0, result.output
    token = result.stdout.splitlines()[-1]
    assert token.startswith("chub_") and token == token.strip()
    assert result.stdout.count(token) == 1
    return token


def test_create_prints_the_token_alone_on_the_last_line(db: str) -> None:
    result = runner.invoke(
        app,
        [
            "token", "create", "--name", "ci", "--role", "editor", "--team", "team:payments",
            "--right", "records", "--right", "pii", "--expires", "30d", "--database", db,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    *summary, token = result.stdout.splitlines()
    assert "created token 'ci'" in summary[0]
    assert any("role: editor" in line and "team:payments" in line for line in summary)
    assert result.stderr == ""
    principal = _verify(db, token)
    assert principal.actor == "token:ci" and principal.role is Role.EDITOR
    assert principal.teams == {"team:payments"}


def test_created_by_defaults_to_the_login_user_and_as_overrides_it(db: str) -> None:
    _create(db, "--name", "mine", "--role", "viewer")
    _create(db, "--name", "theirs", "--role", "viewer", "--as", "ci:pipeline", "--expires", "never")
    listed = runner.invoke(app, ["token", "list", "--database", db], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "viewer" in line}
    assert f"local:{getpass.getuser()}" in rows["mine"]
    assert "ci:pipeline" in rows["theirs"] and "never" in rows["theirs"]


def test_list_shows_every_token_and_its_status(db: str) -> None:
    empty = runner.invoke(app, ["token", "list", "--database", db])
    assert empty.exit_code == 0 and "no tokens" in empty.stdout
    token = _create(db, "--name", "harvest", "--role", "steward", "--team", "team:payments")
    _create(db, "--name", "web", "--role", "viewer")
    assert runner.invoke(app, ["token", "revoke", "harvest", "--database", db]).exit_code == 0
    listed = runner.invoke(app, ["token", "list", "--database", db], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    for column in ("name", "role", "teams", "rights", "created", "expires", "last used", "status"):
        assert column in lines[1]
    harvest = next(line for line in lines if " harvest " in line)
    web = next(line for line in lines if " web " in line)
    assert "steward" in harvest and "team:payments" in harvest and "revoked" in harvest
    assert "viewer" in web and "active" in web
    assert token not in listed.stdout


def test_revoke_then_the_token_no_longer_verifies(db: str) -> None:
    token = _create(db, "--name", "ci", "--role", "admin")
    assert _verify(db, token).role is Role.ADMIN
    result = runner.invoke(app, ["token", "revoke", "ci", "--database", db])
    assert result.exit_code == 0 and "revoked token 'ci'" in result.stdout
    with pytest.raises(UnauthenticatedError, match="'ci' was revoked"):
        _verify(db, token)
    again = runner.invoke(app, ["token", "revoke", "ci", "--database", db])
    assert again.exit_code == 0 and "already revoked" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "ci", "--role", "boss"], "error: role: there is no role 'boss'"),
        (["create", "--name", "ci", "--role", "viewer", "--right", "x"], "no right 'x'"),
        (
            ["create", "--name", "ci", "--role", "viewer", "--team", "team:nope"],
            "error: team: no team 'team:nope' in the catalog",
        ),
        (["create", "--name", "ci", "--role", "viewer", "--team", "payments"], "not a node id"),
        (["create", "--name", "ci", "--role", "viewer", "--expires", "1y"], "error: expires:"),
        (["create", "--name", "ci", "--role", "viewer", "--expires", "3651d"], "10 years"),
        (["create", "--name", "C I", "--role", "viewer"], "error: name:"),
        (["revoke", "nope"], "error: name: no token named 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(db: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["token", *args, "--database", db])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr


def test_a_taken_name_is_one_line_and_exit_1(db: str) -> None:
    _create(db, "--name", "ci", "--role", "viewer")
    result = runner.invoke(
        app, ["token", "create", "--name", "ci", "--role", "viewer", "--database", db]
    )
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: name: a token named 'ci' exists")


def test_token_help_lists_its_commands() -> None:
    result = runner.invoke(app, ["token", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for command in ("create", "list", "revoke"):
        assert command in result.stdout
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert top.exit_code == 0
    for command in ("serve", "apply", "export", "token"):
        assert command in top.stdout
