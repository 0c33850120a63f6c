"""The test suite, mirroring the library; ``REPO`` is the repository root."""

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
