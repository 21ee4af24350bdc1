"""Configuration: ``<data>/artifactd.toml``, read with tomllib, written with tomli-w.

The parsed configuration is a tree of frozen dataclasses. Unknown keys are an
error naming the key and its line in the file; durations take s/m/h/d suffixes.
Sections that belong to plugins (``[plugins.<name>]``) and cleanup policies
(``[cleanup.<name>]``) are kept as plain dictionaries and validated by their owners.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import tomli_w

from artifactd.errors import ConfigError

REPO_TYPES = ("hosted", "proxy", "group")
FORMATS = ("pypi", "generic", "docker")
_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.I)

DEFAULT_MAX_UPLOAD = 4 * 2**30


def parse_duration(value: Any, key: str = "duration") -> float:
    """``"30m"`` → 1800.0; plain numbers are seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like '30m', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ConfigError(f"{key}: expected a duration like '90s', '30m', '12h' or '7d', got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_size(value: Any, key: str = "size") -> int:
    """``"2GiB"``/``"500MB"``/``1024`` → bytes (binary units)."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a size like '2GiB', got {value!r}")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f"{key}: expected a size like '500MiB' or '2GiB', got {value!r}")
    unit = (m.group(2) or "b").lower()[0]
    mult = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[unit]
    return int(float(m.group(1)) * mult)


def validate_repo_name(name: str) -> str:
    if not _REPO_NAME.match(name) or name in ("simple", "packages", "legacy"):
        raise ConfigError(
            f"invalid repository name {name!r}: use letters, digits, '.', '_' or '-' (at most 64 characters)"
        )
    return name


@dataclass(frozen=True)
class ServerConfig:
    """``[server]``: bind address, access and request limits."""

    host: str = "127.0.0.1"
    port: int = 8081
    anonymous_read: bool = True
    max_upload_size: int = DEFAULT_MAX_UPLOAD
    max_connections: int = 256
    request_timeout: float = 60.0
    base_url: str | None = None  # external URL when behind a proxy; else from the Host header


@dataclass(frozen=True)
class RepoConfig:
    """One ``[repositories.<name>]`` table: hosted, proxy or group, and its format."""

    name: str
    type: str
    format: str = "pypi"
    members: tuple[str, ...] = ()
    merge: tuple[str, ...] = ()
    url: str | None = None
    metadata_ttl: float = 1800.0
    negative_ttl: float = 600.0
    timeout: float = 30.0
    offline: bool = False
    connections: int | None = None  # PyPI proxy: cap on requests to the upstream at once (None: no cap)
    anonymous_read: bool | None = None  # None: the server default
    max_upload_size: int | None = None
    username: str | None = None
    password: str | None = None
    allow_overwrite: bool | None = None  # generic hosted: PUT over a path with new bytes (None: allowed)
    upload_expiry: float = 86400.0  # docker: chunked upload sessions idle longer than this are purged
    writable_member: str | None = None  # docker group: the member that receives pushes

    @property
    def overwrite_allowed(self) -> bool:
        """Generic repositories replace a path's file on PUT unless ``allow-overwrite = false``."""
        return self.format == "generic" and self.allow_overwrite is not False

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "format": self.format}
        if self.members:
            out["members"] = list(self.members)
        if self.type == "group":
            out["merge"] = list(self.merge)
        if self.url:
            out["url"] = self.url
        if self.type == "proxy":
            out["metadata-ttl"] = _fmt_duration(self.metadata_ttl)
            out["negative-ttl"] = _fmt_duration(self.negative_ttl)
            out["timeout"] = _fmt_duration(self.timeout)
            out["offline"] = self.offline
            if self.connections is not None:
                out["connections"] = self.connections
        if self.anonymous_read is not None:
            out["anonymous-read"] = self.anonymous_read
        if self.max_upload_size is not None:
            out["max-upload-size"] = self.max_upload_size
        if self.username is not None:
            out["username"] = self.username
        if self.password is not None:
            out["password"] = self.password
        if self.allow_overwrite is not None:
            out["allow-overwrite"] = self.allow_overwrite
        if self.upload_expiry != 86400.0:
            out["upload-expiry"] = _fmt_duration(self.upload_expiry)
        if self.writable_member is not None:
            out["writable-member"] = self.writable_member
        return out


def _fmt_duration(seconds: float) -> str:
    for unit, mult in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= mult and seconds % mult == 0:
            return f"{int(seconds // mult)}{unit}"
    return f"{int(seconds) if seconds == int(seconds) else seconds}s"


@dataclass(frozen=True)
class Config:
    """The whole ``artifactd.toml``, validated."""

    server: ServerConfig = field(default_factory=ServerConfig)
    repositories: Mapping[str, RepoConfig] = field(default_factory=dict)
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cleanup: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    watch: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def repo(self, name: str) -> RepoConfig | None:
        return self.repositories.get(name)

    def with_repo(self, repo: RepoConfig) -> "Config":
        repos = dict(self.repositories)
        repos[repo.name] = repo
        new = replace(self, repositories=repos)
        new.validate()
        return new

    def without_repo(self, name: str) -> "Config":
        repos = {k: v for k, v in self.repositories.items() if k != name}
        new = replace(self, repositories=repos)
        new.validate()
        return new

    def validate(self) -> None:
        """Cross-repository checks: members exist, formats agree, no cycles."""
        for repo in self.repositories.values():
            if repo.type != "group":
                continue
            if repo.writable_member is not None and repo.writable_member not in repo.members:
                raise ConfigError(f"group {repo.name!r}: writable-member {repo.writable_member!r} is not a member")
            for m in repo.members:
                member = self.repositories.get(m)
                if member is None:
                    raise ConfigError(f"group {repo.name!r}: member {m!r} is not a repository")
                if member.format != repo.format:
                    raise ConfigError(
                        f"group {repo.name!r} ({repo.format}): member {m!r} has format {member.format!r}"
                    )
        for name in self.repositories:
            self._check_cycle(name, ())

    def _check_cycle(self, name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            raise ConfigError("group cycle: " + " -> ".join(trail + (name,)))
        repo = self.repositories.get(name)
        if repo is None or repo.type != "group":
            return
        for m in repo.members:
            self._check_cycle(m, trail + (name,))

    def to_toml(self) -> dict[str, Any]:
        s = self.server
        out: dict[str, Any] = {
            "server": {
                "host": s.host,
                "port": s.port,
                "anonymous-read": s.anonymous_read,
                "max-upload-size": s.max_upload_size,
                "max-connections": s.max_connections,
                "request-timeout": _fmt_duration(s.request_timeout),
            },
            "repositories": {name: r.to_toml() for name, r in self.repositories.items()},
        }
        if s.base_url:
            out["server"]["base-url"] = s.base_url
        if self.plugins:
            out["plugins"] = {k: dict(v) for k, v in self.plugins.items()}
        if self.cleanup:
            out["cleanup"] = {k: dict(v) for k, v in self.cleanup.items()}
        if self.watch:
            out["watch"] = dict(self.watch)
        return out


# --- parsing -----------------------------------------------------------------

_SERVER_KEYS = {
    "host": ("host", str),
    "port": ("port", int),
    "anonymous-read": ("anonymous_read", bool),
    "max-upload-size": ("max_upload_size", "size"),
    "max-connections": ("max_connections", int),
    "request-timeout": ("request_timeout", "duration"),
    "base-url": ("base_url", str),
}
_REPO_KEYS = {
    "type": ("type", str),
    "format": ("format", str),
    "members": ("members", "strlist"),
    "merge": ("merge", "strlist"),
    "url": ("url", str),
    "metadata-ttl": ("metadata_ttl", "duration"),
    "negative-ttl": ("negative_ttl", "duration"),
    "timeout": ("timeout", "duration"),
    "offline": ("offline", bool),
    "connections": ("connections", int),
    "anonymous-read": ("anonymous_read", bool),
    "max-upload-size": ("max_upload_size", "size"),
    "username": ("username", str),
    "password": ("password", str),
    "allow-overwrite": ("allow_overwrite", bool),
    "upload-expiry": ("upload_expiry", "duration"),
    "writable-member": ("writable_member", str),
}
_TOP_KEYS = {"server", "repositories", "plugins", "cleanup", "watch"}
#: ``[watch]`` (artifactd.watch): live config reload and a drop folder imported into a hosted repository.
_WATCH_KEYS: dict[str, Any] = {
    "reload": bool,
    "drop-folder": str,
    "drop-repository": str,
    "settle": "duration",
}


class _Locator:
    """Finds the line a key stands on, for error messages (tomllib keeps no positions)."""

    def __init__(self, text: str, path: Path | None) -> None:
        self.lines = text.splitlines()
        self.where = str(path) if path else "<config>"

    def at(self, key: str, table: str | None = None) -> str:
        start = 0
        if table:
            pat = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(re.escape(p) for p in table.split(".")) + r"\s*\]")
            for i, line in enumerate(self.lines):
                if pat.match(line):
                    start = i
                    break
        keypat = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for i in range(start, len(self.lines)):
            if keypat.match(self.lines[i]) or re.match(r"^\s*\[\s*(?:[\w.-]+\.)?" + re.escape(key) + r"\s*\]", self.lines[i]):
                return f"{self.where}:{i + 1}"
        return self.where


def _coerce(value: Any, kind: Any, key: str, where: Callable[[], str]) -> Any:
    """Check and convert one value; ``where`` (its file:line) is only worked out for an error."""
    try:
        if kind == "duration":
            return parse_duration(value, key)
        if kind == "size":
            return parse_size(value, key)
        if kind == "strlist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{key}: expected a list of strings")
            return tuple(value)
    except ConfigError as exc:
        raise ConfigError(f"{where()}: {exc}") from None
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where()}: {key}: expected {kind.__name__}, got {value!r}")
    return value


def parse_config(text: str, path: Path | None = None) -> Config:
    """Parse and validate a configuration document. Raises ConfigError."""
    loc = _Locator(text, path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{loc.where}: invalid TOML: {exc}") from None
    for key in doc:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{loc.at(key)}: unknown key {key!r} (expected one of {', '.join(sorted(_TOP_KEYS))})")

    server_kwargs: dict[str, Any] = {}
    for key, value in _table(doc, "server", loc).items():
        if key not in _SERVER_KEYS:
            raise ConfigError(f"{loc.at(key, 'server')}: unknown key 'server.{key}'")
        attr, kind = _SERVER_KEYS[key]
        server_kwargs[attr] = _coerce(value, kind, f"server.{key}", lambda: loc.at(key, "server"))

    repos: dict[str, RepoConfig] = {}
    for name, table in _table(doc, "repositories", loc).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{loc.at(name, 'repositories')}: repositories.{name} must be a table")
        try:
            validate_repo_name(name)
        except ConfigError as exc:
            raise ConfigError(f"{loc.at(name, 'repositories')}: {exc}") from None
        kwargs: dict[str, Any] = {"name": name}
        for key, value in table.items():
            if key not in _REPO_KEYS:
                raise ConfigError(f"{loc.at(key, 'repositories.' + name)}: unknown key 'repositories.{name}.{key}'")
            attr, kind = _REPO_KEYS[key]
            kwargs[attr] = _coerce(value, kind, f"repositories.{name}.{key}",
                                   lambda: loc.at(key, "repositories." + name))
        try:
            repos[name] = make_repo(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{loc.at(name, 'repositories')}: {exc}") from None

    plugins = _table(doc, "plugins", loc)
    cleanup = _table(doc, "cleanup", loc)
    for section, tables in (("plugins", plugins), ("cleanup", cleanup)):
        for name, table in tables.items():
            if section == "plugins" and name == "disable":  # [plugins] disable = ["health", ...]
                _coerce(table, "strlist", "plugins.disable", lambda: loc.at("disable", "plugins"))
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{loc.at(name, section)}: {section}.{name} must be a table")
    watch = _table(doc, "watch", loc)
    for key, value in watch.items():
        if key not in _WATCH_KEYS:
            raise ConfigError(f"{loc.at(key, 'watch')}: unknown key 'watch.{key}' "
                              f"(expected one of {', '.join(sorted(_WATCH_KEYS))})")
        _coerce(value, _WATCH_KEYS[key], f"watch.{key}", lambda: loc.at(key, "watch"))
    cfg = Config(
        server=ServerConfig(**server_kwargs),
        repositories=repos,
        plugins=plugins,
        cleanup=cleanup,
        watch=watch,
        path=path,
    )
    try:
        cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{loc.where}: {exc}") from None
    return cfg


def make_repo(**kwargs: Any) -> RepoConfig:
    """Build a RepoConfig, checking the fields that only make sense together."""
    name = kwargs["name"]
    rtype = kwargs.get("type")
    if rtype not in REPO_TYPES:
        raise ConfigError(f"repository {name!r}: type must be one of {', '.join(REPO_TYPES)}, got {rtype!r}")
    fmt = kwargs.setdefault("format", "pypi")
    if fmt not in FORMATS:
        raise ConfigError(f"repository {name!r}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if rtype == "proxy":
        url = kwargs.get("url")
        if not url or not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(f"proxy repository {name!r} needs an http(s) url")
    elif kwargs.get("url"):
        raise ConfigError(f"repository {name!r}: only proxy repositories take a url")
    if "connections" in kwargs:
        if rtype != "proxy" or fmt != "pypi":
            raise ConfigError(f"repository {name!r}: only PyPI proxy repositories take connections")
        if not 1 <= kwargs["connections"] <= 256:
            raise ConfigError(f"repository {name!r}: connections must be between 1 and 256, "
                              f"got {kwargs['connections']}")
    if rtype != "group" and (kwargs.get("members") or kwargs.get("merge")):
        raise ConfigError(f"repository {name!r}: only groups take members/merge")
    if rtype != "group" and kwargs.get("writable_member"):
        raise ConfigError(f"repository {name!r}: only groups take writable-member")
    return RepoConfig(**kwargs)


def _table(doc: Mapping[str, Any], key: str, loc: _Locator) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{loc.at(key)}: {key} must be a table")
    return value


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found (run 'artifactd init')") from None
    return parse_config(text, path)


def save_config(cfg: Config, path: Path) -> None:
    """Write atomically (tmp + fsync + rename) so a reader never sees half a file."""
    data = tomli_w.dumps(cfg.to_toml())
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("# artifactd configuration; see README.md. Edits are picked up by a running server.\n")
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def default_config() -> Config:
    """The embedded defaults: a hosted PyPI repository and a group containing it."""
    repos = {
        "pypi-local": RepoConfig(name="pypi-local", type="hosted", format="pypi"),
        "pypi": RepoConfig(name="pypi", type="group", format="pypi", members=("pypi-local",)),
    }
    return Config(repositories=repos)
