"""Build real wheels and sdists in a few milliseconds, without a build backend."""
from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def _metadata(name: str, version: str, requires: list[str], requires_python: str | None,
              license_expression: str | None, extra: str) -> str:
    lines = ["Metadata-Version: 2.4" if license_expression else "Metadata-Version: 2.1",
             f"Name: {name}", f"Version: {version}", f"Summary: test package {name}"]
    if license_expression:
        lines.append(f"License-Expression: {license_expression}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n" + extra + "\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(directory: Path, name: str, version: str, *, requires: list[str] | None = None,
               requires_python: str | None = None, license_expression: str | None = None,
               extra_metadata: str = "", payload: bytes = b"", tag: str = "py3-none-any") -> Path:
    """A valid, installable pure-Python wheel with a module named after the project."""
    dist = canonicalize_name(name).replace("-", "_")
    module = dist
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-{tag}.whl"
    distinfo = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n".encode() + (b"# " + payload.hex().encode() + b"\n" if payload else b""),
        f"{distinfo}/METADATA": _metadata(name, version, requires or [], requires_python, license_expression,
                                          extra_metadata).encode(),
        f"{distinfo}/WHEEL": f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = [_record_line(p, d) for p, d in files.items()] + [f"{distinfo}/RECORD,,"]
    files[f"{distinfo}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p, d in files.items():
            zf.writestr(zipfile.ZipInfo(p, date_time=(2024, 1, 1, 0, 0, 0)), d)
    return path


def make_sdist(directory: Path, name: str, version: str, *, requires: list[str] | None = None,
               requires_python: str | None = None, license_expression: str | None = None) -> Path:
    dist = canonicalize_name(name).replace("-", "_")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}.tar.gz"
    top = f"{dist}-{version}"
    pkg_info = _metadata(name, version, requires or [], requires_python, license_expression, "").encode()
    pyproject = (f'[project]\nname = "{name}"\nversion = "{version}"\n'
                 '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n').encode()
    with tarfile.open(path, "w:gz") as tf:
        for p, d in ((f"{top}/PKG-INFO", pkg_info), (f"{top}/pyproject.toml", pyproject),
                     (f"{top}/{dist}/__init__.py", b"")):
            info = tarfile.TarInfo(p)
            info.size = len(d)
            info.mtime = 1704067200
            tf.addfile(info, io.BytesIO(d))
    return path
