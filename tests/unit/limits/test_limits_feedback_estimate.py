"""Provider rate-limit headers, and prompt token estimates with the shipped o200k_base encoding."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from erp_agents.limits.estimate import FOREIGN_MARGIN, estimate_prompt_tokens, o200k
from erp_agents.limits.feedback import parse_duration, parse_headers, retry_after

NOW = 1_800_000_000.0


def test_openai_headers() -> None:
    fb = parse_headers({"X-RateLimit-Limit-Requests": "300", "x-ratelimit-remaining-requests": "12",
                        "x-ratelimit-reset-requests": "6m0s", "x-ratelimit-limit-tokens": "60000",
                        "x-ratelimit-remaining-tokens": "1500", "x-ratelimit-reset-tokens": "250ms"}, NOW)
    assert (fb.limit_requests, fb.remaining_requests, fb.reset_requests_s) == (300, 12, 360.0)
    assert (fb.limit_tokens, fb.remaining_tokens, fb.reset_tokens_s) == (60000, 1500, 0.25)
    assert fb.retry_after_s is None


def test_anthropic_headers_and_retry_after() -> None:
    fb = parse_headers({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                        "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",
                        "anthropic-ratelimit-input-tokens-limit": "40000",
                        "anthropic-ratelimit-input-tokens-remaining": "39000",
                        "anthropic-ratelimit-input-tokens-reset": "2027-01-15T08:00:10Z", "retry-after": "30"},
                       now=NOW)
    assert (fb.limit_requests, fb.remaining_requests) == (50, 0)
    reset_at = datetime(2027, 1, 15, 8, 0, 30, tzinfo=UTC).timestamp()
    assert fb.reset_requests_s == pytest.approx(reset_at - NOW)  # an RFC 3339 time: seconds from now
    assert fb.reset_tokens_s == pytest.approx(reset_at - 20 - NOW)
    assert (fb.limit_tokens, fb.remaining_tokens, fb.retry_after_s) == (40000, 39000, 30.0)


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, now=1792567670.0) == 10.0
    assert retry_after({}) is None
    assert parse_duration("1m30.5s") == 90.5 and parse_duration("soon") is None


def test_shipped_encoding_is_tiktokens_o200k_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fed the shipped file through tiktoken's cache, tiktoken's own o200k_base constructor accepts it
    (hash checked) and builds the same encoding as ours."""
    from tiktoken_ext import openai_public

    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    raw = gzip.decompress(resources.files("erp_agents.limits").joinpath("data/o200k_base.tiktoken.gz").read_bytes())
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(raw)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    official = openai_public.o200k_base()
    ours = o200k()
    assert ours._pat_str == official["pat_str"]
    assert ours._special_tokens == official["special_tokens"]
    assert ours._mergeable_ranks == official["mergeable_ranks"]
    assert ours.encode("Reconcile the general ledger for 2026-10.") == [
        ours.encode_single_token(t) for t in [b"Re", b"concile", b" the", b" general", b" ledger", b" for", b" ",
                                              b"202", b"6", b"-", b"10", b"."]]


def test_estimates_count_messages_and_err_high_for_other_tokenizers() -> None:
    text = "Reconcile the general ledger against the bank statements of October."
    exact = estimate_prompt_tokens([{"role": "user", "content": text}], "gpt-4o-mini")
    assert exact == len(o200k().encode(text)) + len(o200k().encode("user")) + 4 + 3
    assert estimate_prompt_tokens([{"role": "user", "content": text}], "claude-sonnet-4") == \
        -(-exact * FOREIGN_MARGIN // 1)
    assert estimate_prompt_tokens(text, "gpt-4o") == exact - len(o200k().encode("user"))  # no role in plain text
