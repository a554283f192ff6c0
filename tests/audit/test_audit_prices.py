"""The price table: known models priced, unknown models null, overrides validated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import structlog_belog as belog
from structlog_belog.audit.fake_llm import fake_openai_client
from structlog_belog.audit.prices import (
    BUILTIN_PRICES,
    PRICES_VERSION,
    Price,
    cost_usd,
    price_of,
    validate_prices,
)
from structlog_belog.core.config import Config
from tests.audit.test_audit import MESSAGES, prompts


class TestPriceOf:
    def test_snapshots_use_their_base_price(self) -> None:
        """Dated snapshots cost what their base model costs."""
        assert BUILTIN_PRICES["gpt-4o"] == price_of("gpt-4o-2024-08-06")
        assert BUILTIN_PRICES["gpt-4"] == price_of("gpt-4-0613")

    def test_unknown_model_is_none(self) -> None:
        """A model the table does not know has no price (never 0)."""
        assert price_of("my-local-llama") is None
        assert cost_usd("my-local-llama", {"input_tokens": 10, "output_tokens": 5}) is None
        assert cost_usd("gpt-4o", None) is None

    def test_mini_is_not_priced_as_its_bigger_sibling(self) -> None:
        """gpt-4o-mini has its own price, not gpt-4o's."""
        assert BUILTIN_PRICES["gpt-4o-mini"] == price_of("gpt-4o-mini-2024-07-18")

    def test_table_is_versioned(self) -> None:
        """The table carries the date it was checked."""
        assert 10 == len(PRICES_VERSION)


class TestCostUsd:
    def test_cached_tokens_at_the_cached_rate(self) -> None:
        """Cached input tokens cost the cached rate; the rest the input rate."""
        usage = {"input_tokens": 2000, "output_tokens": 100, "cached_tokens": 1024}
        expected = (976 * 2.50 + 1024 * 1.25 + 100 * 10.00) / 1e6
        assert pytest.approx(expected) == cost_usd("gpt-4o", usage)

    @given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7))
    def test_cost_is_never_negative_and_caching_never_costs_more(
        self, input_tokens: int, output_tokens: int, cached: int
    ) -> None:
        """For any counts, cost >= 0 and a cache hit never raises the price."""
        price = BUILTIN_PRICES["gpt-4.1"]
        with_cache = price.cost(input_tokens, output_tokens, cached)
        assert 0 <= with_cache <= price.cost(input_tokens, output_tokens, 0) + 1e-9


class TestValidatePrices:
    def test_accepts_mappings_and_prices(self) -> None:
        """Mappings become Price objects; Price objects are kept."""
        table = validate_prices({"a": {"input": 1, "output": 2}, "b": Price(3.0)})
        assert {"a": Price(1.0, 2.0), "b": Price(3.0)} == table

    @pytest.mark.parametrize(
        ("prices", "error", "match"),
        [
            ({1: {"input": 1}}, TypeError, "keys must be model names"),
            ({"m": 3}, TypeError, r"prices\['m'\] must be a mapping"),
            ({"m": {"output": 1}}, ValueError, "must have 'input'"),
            ({"m": {"input": -1}}, ValueError, "non-negative number"),
            ({"m": {"input": 1, "extra": 2}}, ValueError, "got keys"),
        ],
    )
    def test_refuses_bad_tables(
        self, prices: dict[object, object], error: type, match: str
    ) -> None:
        """Bad override tables are refused, naming the model and the problem."""
        with pytest.raises(error, match=match):
            validate_prices(prices)  # type: ignore[arg-type]


class TestCostInRecords:
    def test_builtin_price_in_the_record(self, belog_config: Config) -> None:
        """A known model's call carries cost_usd computed from the server's usage."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("cost") as run:
            result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        assert result.usage is not None
        expected = (result.usage.prompt_tokens * 0.15 + result.usage.completion_tokens * 0.60) / 1e6
        assert pytest.approx(expected) == record["cost_usd"]

    def test_unknown_model_cost_is_null(self, belog_config: Config) -> None:
        """An unknown model's call has cost_usd null."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("unknown") as run:
            client.chat.completions.create(model="local-model", messages=MESSAGES)
        assert [None] == [r["cost_usd"] for r in prompts(run)]

    def test_configure_prices_override(self, tmp_path: object) -> None:
        """configure(prices=...) prices a model the table does not know."""
        belog.configure(
            log_dir=f"{tmp_path}/logs",
            console=False,
            handle_signals=False,
            prices={"local-model": {"input": 1.0, "output": 2.0}},
        )
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("override", package=False) as run:
            result = client.chat.completions.create(model="local-model", messages=MESSAGES)
        assert result.usage is not None
        expected = (result.usage.prompt_tokens * 1.0 + result.usage.completion_tokens * 2.0) / 1e6
        assert [pytest.approx(expected)] == [r["cost_usd"] for r in prompts(run)]
