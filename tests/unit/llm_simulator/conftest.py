"""Fixtures: simulator subprocesses shared per session, reset before each test."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import anthropic
import openai
import pytest

from include.llm_simulator.testing import SimulatorHandle, running_simulator
from sim_expect import SECRET_KEY


def _wait_for_requests(sim: SimulatorHandle, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Logged requests once ``count`` are there (entries land when a request finishes)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = sim.requests()
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.02)


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[SimulatorHandle]:
    with running_simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def limited_sim() -> Iterator[SimulatorHandle]:
    with running_simulator(rpm=3, tpm=1000) as sim:
        yield sim


@pytest.fixture(scope="session")
def secured_sim() -> Iterator[SimulatorHandle]:
    with running_simulator(api_key=SECRET_KEY) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: SimulatorHandle) -> SimulatorHandle:
    shared_sim.reset()
    return shared_sim


@pytest.fixture
def limited(limited_sim: SimulatorHandle) -> SimulatorHandle:
    limited_sim.reset()
    return limited_sim


@pytest.fixture
def secured(secured_sim: SimulatorHandle) -> SimulatorHandle:
    secured_sim.reset()
    return secured_sim


@pytest.fixture(scope="session")
def _oai_client(shared_sim: SimulatorHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=shared_sim.openai_base_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture(scope="session")
def _ant_client(shared_sim: SimulatorHandle) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=shared_sim.base_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture
def oai(sim: SimulatorHandle, _oai_client: openai.OpenAI) -> openai.OpenAI:
    """OpenAI SDK client of the shared simulator (reset for this test)."""
    return _oai_client


@pytest.fixture
def ant(sim: SimulatorHandle, _ant_client: anthropic.Anthropic) -> anthropic.Anthropic:
    """Anthropic SDK client of the shared simulator (reset for this test)."""
    return _ant_client


@pytest.fixture
def wait_for_requests() -> Callable[..., list[dict[str, Any]]]:
    return _wait_for_requests
