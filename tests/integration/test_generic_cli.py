"""The generic-file commands: upload --path/--prop, props, search, promote, errors."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from artifactd.cli import cli


def invoke(data: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["--data-dir", str(data), *args])
    return r.exit_code, r.output


def test_generic_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert invoke(data, "init")[0] == 0
    for name in ("dev", "prod"):
        assert invoke(data, "repo", "create", name, "--type", "hosted", "--format", "generic")[0] == 0
    f = tmp_path / "model.onnx"
    f.write_bytes(b"onnx-bytes")
    code, out = invoke(data, "upload", "dev", str(f), "--path", "models/m/1/", "--prop", "framework=onnx",
                       "--prop", "accuracy=0.91", "--json")
    assert code == 0, out
    assert json.loads(out)[0]["path"] == "models/m/1/model.onnx"
    code, out = invoke(data, "props", "set", "dev", "models/m/1/model.onnx", "stage=qa", "tags=a,b", "--json")
    assert json.loads(out) == {"accuracy": ["0.91"], "framework": ["onnx"], "stage": ["qa"], "tags": ["a", "b"]}
    code, out = invoke(data, "props", "delete", "dev", "models/m/1/model.onnx", "tags")
    assert code == 0 and "tags" not in out
    code, out = invoke(data, "props", "get", "dev", "models/m/1/model.onnx")
    assert "stage=qa" in out.splitlines()
    code, out = invoke(data, "search", "--prop", "framework=onnx", "--name", "*.onnx")
    assert out.startswith("dev:models/m/1/model.onnx")
    code, out = invoke(data, "promote", "dev", "prod", "--path", "models/m/1/model.onnx", "--move", "--json")
    assert code == 0 and json.loads(out)["items"][0]["outcome"] == "moved"
    code, out = invoke(data, "search", "--repo", "dev", "--json")
    assert json.loads(out) == []
    # errors: one line, non-zero exit
    code, out = invoke(data, "props", "get", "dev", "models/m/1/model.onnx")
    assert code == 1 and out.strip().count("\n") == 0 and "not found" in out
    code, out = invoke(data, "upload", "dev", str(f), "--path", "../evil")
    assert code == 1 and "invalid path" in out
    code, out = invoke(data, "upload", "pypi-local", str(f), "--prop", "a=1")
    assert code == 2
    code, out = invoke(data, "build", "show", "nope", "1")
    assert code == 1 and "not found" in out
