"""The ``artifactd`` command line: thin click commands over :mod:`artifactd.service`.

This module holds the group, the helpers the topic modules share, ``init`` and ``serve``. Every
other command lives in a topic module that is imported only when one of its commands runs (or
for ``--help``): ``artifactd serve`` loads no more than the server needs, which keeps start-up short.
"""
from __future__ import annotations

import gc
import importlib
import json
import logging
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

import click

from artifactd import __version__
from artifactd.errors import ArtifactdError
from artifactd.store.layout import default_data_dir

if TYPE_CHECKING:
    from artifactd.app import App

F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._app: App | None = None

    def app(self, create: bool = False) -> App:
        if self._app is None:
            from artifactd.app import App

            self._app = App(self.data_dir, create=create)
        return self._app


@contextmanager
def paused_gc() -> Iterator[None]:
    """Start-up with the cyclic garbage collector paused.

    Start-up makes tens of thousands of long-lived objects (modules, classes, functions) and no
    garbage; every 700 of them set off a collection that walked them all again, ~6% of the time
    to serve. (``gc.freeze()`` afterwards was tried: with the frozen objects out of the count,
    full collections came so much more often that a cached page cost ~3% more.)
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def fail(exc: Exception) -> None:
    raise click.ClickException(str(getattr(exc, "message", exc)))


# Topic modules: each attaches its commands to ``cli`` when imported.
TOPIC_MODULES = ("core_cmds", "build_cmds", "generic_cmds", "policy_cmds", "accounts", "integrity", "proxy_cmds")


class Group(click.Group):
    """Turns expected errors into one clear line and exit status 1; loads topic modules lazily."""

    _loaded = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArtifactdError as exc:
            raise click.ClickException(exc.message) from None

    def load_all(self) -> None:
        """Import every topic module and let plugins add their commands (once)."""
        if self._loaded:
            return
        self._loaded = True
        for name in TOPIC_MODULES:
            importlib.import_module(f"artifactd.cli.{name}")
        app_plugins_commands()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None:
            self.load_all()
            cmd = super().get_command(ctx, cmd_name)
        return cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return super().list_commands(ctx)


def emit(obj: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(obj, indent=2, default=str))
    else:
        human(obj)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)  # type: ignore[return-value]


@click.group(cls=Group)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="ARTIFACTD_HOME",
              default=None, help="Data directory (env ARTIFACTD_HOME; default ~/.local/share/artifactd).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(__version__, prog_name="artifactd")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: int) -> None:
    """artifactd: a local artifact manager (Python package index, generic files, plugins)."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Ctx(data_dir or default_data_dir())


pass_ctx = click.make_pass_decorator(Ctx)


# --- init / serve ----------------------------------------------------------------------------

@cli.command()
@click.option("--proxy", "proxy_url", metavar="URL", default=None,
              help="Also create a proxy repository of this upstream index and add it to the group.")
@pass_ctx
def init(c: Ctx, proxy_url: str | None) -> None:
    """Create the data directory, configuration, default repositories and admin credential."""
    app = c.app(create=True)
    if proxy_url:
        from artifactd import service

        if app.config.repo("pypi-remote") is None:
            service.create_repository(app, "pypi-remote", "proxy", "pypi", url=proxy_url)
        group = app.config.repo("pypi")
        if group is not None and "pypi-remote" not in group.members:
            from dataclasses import replace

            app.set_config(app.config.with_repo(replace(group, members=group.members + ("pypi-remote",))))
    _announce(app)


def _announce(app: App) -> None:
    click.echo(f"data directory: {app.layout.root}")
    click.echo(f"configuration:  {app.layout.config}")
    token = getattr(app, "new_admin_token", None)
    if token:
        click.echo("admin credential (shown once; also in "
                   f"{app.layout.credentials}, mode 0600):")
        click.echo("  username: __token__")
        click.echo(f"  token:    {token}")
    else:
        click.echo("already initialised")


@cli.command()
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8081; 0 picks a free one).")
@pass_ctx
def serve(c: Ctx, host: str | None, port: int | None) -> None:
    """Run the HTTP server (creates a fresh data directory on first start)."""
    with paused_gc():
        from artifactd.deferred import defer

        defer("ssl")  # imported when first used (an https upstream), not by http.server's import
        from artifactd.http.server import make_server, tune_malloc

        tune_malloc()
        logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
        app = c.app(create=True)
        if app.created:
            _announce(app)
        server = make_server(app, host, port)
    base = server.url
    click.echo(f"artifactd {__version__} serving {app.layout.root} on {base}", err=True)
    for name, cfg in app.config.repositories.items():
        if cfg.format == "pypi":
            click.echo(f"  {name:<20} {cfg.type:<7} {base}/repository/{name}/simple/", err=True)
        else:
            click.echo(f"  {name:<20} {cfg.type:<7} {base}/repository/{name}/  ({cfg.format})", err=True)
    sys.stderr.flush()

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        app.close()


def main() -> None:
    cli(prog_name="artifactd")


def app_plugins_commands() -> None:
    """Let plugins add commands (``artifactd_register_commands``) without building a full App."""
    from artifactd.plugins import Hooks, make_plugin_manager

    try:
        Hooks(make_plugin_manager()).register_commands(cli)
    except ArtifactdError:
        pass  # reported by the command that builds the App


