"""Secure by default: with auth off, `capahub serve` keeps to loopback unless told otherwise."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from catalog.cli import app
from catalog.cli.serve import _check_exposure
from catalog.settings import is_loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "hub.example.com"])
def test_serve_refuses_a_public_address_with_auth_off(host: str, tmp_path: object) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--host", host, "--database", f"sqlite:///{tmp_path}/c.db"]
    )
    assert result.exit_code == 1
    assert "access control is off" in result.output and "--insecure-no-auth" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_loopback_addresses_are_fine(host: str) -> None:
    assert is_loopback(host)
    _check_exposure(host, "off", insecure=False)


def test_auth_on_or_the_explicit_flag_lets_it_listen_anywhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _check_exposure("0.0.0.0", "on", insecure=False)
    _check_exposure("0.0.0.0", "off", insecure=True)
    assert "access control off" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CAPAHUB_AUTH_ANONYMOUS_ROLE": "superuser"}, "no role 'superuser'"),
        ({"CAPAHUB_AUTH_JWKS_URL": "/x.json", "CAPAHUB_AUTH_ALGORITHMS": "HS256"}, "HS256"),
    ],
)
def test_serve_refuses_auth_settings_that_cannot_work(
    env: dict[str, str], says: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPAHUB_AUTH", "on")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve", "--database", f"sqlite:///{tmp_path}/c.db"])
    assert result.exit_code == 1 and says in result.output
    assert "Traceback" not in result.output
