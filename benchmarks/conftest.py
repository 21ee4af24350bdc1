"""Benchmarks are not part of the test suite: run them with `pytest benchmarks/`."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
