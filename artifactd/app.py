"""Composition root: one data directory → configuration, store, plugins, repositories.

Both the server and the CLI build an :class:`App` over the same data directory;
SQLite (WAL) and the per-repository serials keep them consistent.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from artifactd import auth
from artifactd.config import Config, default_config, load_config, save_config
from artifactd.errors import ConfigError, Forbidden, RepositoryNotFound, Unauthorized
from artifactd.model import ANONYMOUS, Principal, isotime, utcnow
from artifactd.plugins import Hooks, make_plugin_manager
from artifactd.repositories.base import Repository
from artifactd.store.blobs import BlobStore
from artifactd.store.db import MetadataStore
from artifactd.store.layout import Layout, default_data_dir

log = logging.getLogger(__name__)

RepoFactory = Callable[["App", Any], Repository]


class App:
    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        create: bool = True,
        plugins: Sequence[object] = (),
        load_entrypoints: bool = True,
    ) -> None:
        self.layout = Layout(Path(data_dir) if data_dir else default_data_dir())
        self.created = False
        if not self.layout.config.exists():
            if not create:
                raise ConfigError(f"{self.layout.root} is not an artifactd data directory (run 'artifactd init')")
            self.layout.ensure()
            save_config(default_config(), self.layout.config)
            self.created = True
        self.layout.ensure()
        self._config = load_config(self.layout.config)
        self._config_mtime = self._mtime()
        self._lock = threading.RLock()
        self.blobs = BlobStore(self.layout)
        self.db = MetadataStore(self.layout.database)
        self.pm = make_plugin_manager(
            self._disabled(self._config),
            load_entrypoints=load_entrypoints,
            plugins=plugins,
        )
        self.hooks = Hooks(self.pm)
        self.kinds: dict[Any, RepoFactory] = self.hooks.register_repository_kinds()
        self._repos: dict[str, Repository] = {}
        #: called with the new Config after every change (the server clears its page cache)
        self.config_listeners: list[Callable[[Config], None]] = []
        self.hooks.configure(self._config)
        if self.created:
            self.bootstrap_admin()

    @staticmethod
    def _disabled(cfg: Config) -> tuple[str, ...]:
        """``[plugins] disable = ["health", ...]`` (a list; ``[plugins.disable] names = [...]`` also works)."""
        value: Any = cfg.plugins.get("disable", ())
        if isinstance(value, dict):
            value = value.get("names", ())
        if isinstance(value, str):
            value = (value,)
        return tuple(str(v) for v in value)

    # --- configuration ----------------------------------------------------------
    @property
    def config(self) -> Config:
        return self._config

    def _mtime(self) -> int:
        try:
            return os.stat(self.layout.config).st_mtime_ns
        except FileNotFoundError:
            return 0

    def reload_if_changed(self) -> bool:
        """Re-read the TOML when its mtime changed; keep the old config if the new one is invalid."""
        m = self._mtime()
        if m == self._config_mtime:
            return False
        with self._lock:
            if m == self._config_mtime:
                return False
            self._config_mtime = m
            try:
                cfg = load_config(self.layout.config)
                self.set_config(cfg, save=False)
            except ConfigError as exc:
                log.error("configuration not reloaded, keeping the previous one: %s", exc)
                return False
            log.info("configuration reloaded from %s", self.layout.config)
            return True

    def set_config(self, cfg: Config, *, save: bool = True) -> None:
        """Validate (core, then every plugin's ``artifactd_configure``), then install and save.

        A plugin rejecting its section raises ConfigError and the previous configuration stays.
        """
        cfg.validate()
        with self._lock:
            old = self._config
            try:
                self.hooks.configure(cfg)
            except ConfigError:
                self.hooks.configure(old)
                raise
            if self._disabled(cfg) != self._disabled(old):
                log.warning("[plugins] disable changed: restart artifactd to load or unload plugins")
            if save:
                save_config(cfg, self.layout.config)
                self._config_mtime = self._mtime()
            self._config = cfg
            self._repos = self._carry_over(old, cfg)
            for listener in list(self.config_listeners):
                try:
                    listener(cfg)
                except Exception:
                    log.exception("configuration listener failed")

    def _carry_over(self, old: Config, new: Config) -> dict[str, Repository]:
        """The built repositories the new configuration keeps.

        A repository whose definition is unchanged keeps its object across any other change (a
        ``repo create`` elsewhere, a new cleanup policy): a proxy keeps its upstream connection pool
        and its downloads in flight, so a request arriving during a reload joins the running fetch
        instead of starting a second one. A changed ``[plugins]`` section rebuilds every
        repository, since a plugin may read its settings when it builds one (upstream credentials).

        A retired repository is not closed: requests that hold it (a proxy's, waiting for one of its
        upstream connections, say) run to the end on it, and it goes, with its connections, when the
        last of them does.
        """
        if new.plugins != old.plugins:
            return {}
        return {name: repo for name, repo in self._repos.items() if new.repo(name) == repo.config}

    # --- repositories -----------------------------------------------------------
    def repository(self, name: str) -> Repository:
        repo = self._repos.get(name)
        if repo is not None:
            return repo
        with self._lock:
            cfg = self._config.repo(name)
            if cfg is None:
                raise RepositoryNotFound(f"no repository named {name!r}")
            factory = self.kinds.get((cfg.type, cfg.format))
            if factory is None:
                raise ConfigError(f"repository {name!r}: no plugin provides {cfg.type} {cfg.format} repositories")
            repo = self._repos[name] = factory(self, cfg)
            return repo

    # --- credentials --------------------------------------------------------------
    def bootstrap_admin(self) -> str | None:
        """Create the ``admin`` user and a first token; write it to a 0600 file. Returns the token."""
        if self.db.get_user("admin") is not None:
            return None
        now = isotime(utcnow())
        self.db.add_user("admin", None, True, now)
        token = auth.new_token()
        self.db.add_token("admin", "initial admin token", auth.hash_token(token), ("admin",), (), now, None)
        fd = os.open(self.layout.credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"# artifactd admin credential, created {now}\n")
            fh.write("username = __token__\n")
            fh.write(f"token = {token}\n")
        self.new_admin_token = token
        return token

    def authenticate(self, header: str | None) -> Principal:
        """The principal for an Authorization header; ANONYMOUS when there is none.

        Raises Unauthorized for wrong, expired or revoked credentials.
        """
        parsed = auth.parse_authorization(header)
        if parsed is None:
            return ANONYMOUS
        scheme, user, secret = parsed
        if scheme == "bearer" or user == "__token__" or secret.startswith(auth.TOKEN_PREFIX):
            found = self.db.token_by_hash(auth.hash_token(secret))
            if found is None:
                raise Unauthorized("invalid or non-existent authentication information")
            info = found[0]
            if info.revoked:
                raise Unauthorized("this token has been revoked")
            if info.expires and info.expires < isotime(utcnow()):
                raise Unauthorized("this token has expired")
            if scheme == "basic" and user not in ("__token__", info.user):
                raise Unauthorized("invalid or non-existent authentication information")
            principal = self.token_principal(auth.hash_token(secret))
            if principal is None:  # pragma: no cover - revoked between the two reads
                raise Unauthorized("invalid or non-existent authentication information")
            return principal
        row = self.db.get_user(user)
        if row is None or not auth.verify_password(secret, row[1]):
            raise Unauthorized("invalid or non-existent authentication information")
        return self.user_principal(row[0], row[2])

    def token_principal(self, token_hash: str) -> Principal | None:
        """Who a token (by its stored hash) speaks for now; None if unknown, revoked or expired.

        Used per request, so revoking a token or a grant takes effect at once (also for web sessions).
        """
        found = self.db.token_by_hash(token_hash)
        if found is None:
            return None
        info, is_admin = found
        if info.revoked or (info.expires and info.expires < isotime(utcnow())):
            return None
        return Principal(user=info.user, scopes=info.scopes, repos=info.repos,
                         is_admin=is_admin and "admin" in info.scopes, grants=self._grants(info.user, is_admin))

    def user_principal(self, name: str, is_admin: bool) -> Principal:
        """A user who proved their password: every scope, capped by their per-repository grants."""
        return Principal(user=name, scopes=("read", "write", "delete", "admin"), is_admin=is_admin,
                         grants=self._grants(name, is_admin))

    def _grants(self, user: str, is_admin: bool) -> tuple[tuple[str, str], ...]:
        """Per-repository levels (``artifactd perm``); an admin user holds admin everywhere."""
        if is_admin:
            return (("*", "admin"),)
        return tuple((repo, level) for _, repo, level in self.db.permissions(user))

    def require(self, principal: Principal, action: str, repo: str) -> None:
        """Raise Unauthorized (no credentials) or Forbidden (not allowed) unless permitted."""
        if action == "read":
            cfg = self._config.repo(repo)
            anon = cfg.anonymous_read if cfg and cfg.anonymous_read is not None else self._config.server.anonymous_read
            if anon:
                return
        if principal.anonymous:
            raise Unauthorized("authentication required")
        if not principal.can(action, repo):
            raise Forbidden(f"{principal.user!r} may not {action} in repository {repo!r}")

    def close(self) -> None:
        with self._lock:
            repos, self._repos = list(self._repos.values()), {}
        for repo in repos:
            close = getattr(repo, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("repository %s: closing failed", repo.name)
        self.db.close()
