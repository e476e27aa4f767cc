"""The loader reads YAML events from libyaml when PyYAML has it, else from PyYAML's pure-Python
parser. The ``yaml_parser`` fixture runs a test once with each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from erp_agents.spec import yaml_reader as reader

HAS_LIBYAML = reader._CParser is not None
PARSERS = [
    pytest.param("libyaml", marks=pytest.mark.skipif(not HAS_LIBYAML, reason="PyYAML was built without libyaml")),
    "python",
]


@contextmanager
def using_parser(name: str) -> Iterator[None]:
    before = reader.USE_LIBYAML
    reader.USE_LIBYAML = name == "libyaml"
    try:
        yield
    finally:
        reader.USE_LIBYAML = before


@pytest.fixture(params=PARSERS)
def yaml_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    with using_parser(request.param):
        yield request.param
