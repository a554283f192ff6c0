"""What an LLM call cost: a versioned built-in price table, overridable.

Prices are US dollars per million tokens, as published by OpenAI on the date in
`PRICES_VERSION`. ``configure(prices={...})`` overrides or extends the table::

    belog.configure(prices={"my-finetune": {"input": 3.0, "output": 12.0}})

A model the table does not know costs ``None`` — never 0, so an unknown price is
never mistaken for a free call. Dated snapshots (``gpt-4o-2024-08-06``) use the
price of their base model unless the table names them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["BUILTIN_PRICES", "PRICES_VERSION", "Price", "cost_usd", "price_of", "validate_prices"]

#: The date the built-in table was checked against the published prices.
PRICES_VERSION: Final = "2025-08-07"


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens: input, cached input, output."""

    input: float
    output: float = 0.0
    cached_input: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """Return the cost in US dollars of one call with these token counts."""
        cached = min(max(cached_tokens, 0), input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        dollars = (
            (input_tokens - cached) * self.input
            + cached * cached_rate
            + output_tokens * self.output
        ) / 1_000_000
        return round(dollars, 10)


def _p(input_: float, output: float = 0.0, cached: float | None = None) -> Price:
    return Price(input=input_, output=output, cached_input=cached)


BUILTIN_PRICES: Final[Mapping[str, Price]] = {
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4-turbo": _p(10.00, 30.00),
    "gpt-4": _p(30.00, 60.00),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "o1": _p(15.00, 60.00, 7.50),
    "o1-mini": _p(1.10, 4.40, 0.55),
    "o3": _p(2.00, 8.00, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    "text-embedding-3-small": _p(0.02),
    "text-embedding-3-large": _p(0.13),
    "text-embedding-ada-002": _p(0.10),
}

# "-2024-08-06" (dated snapshot) or "-0613" (old-style snapshot) at the end of a model name.
_SNAPSHOT: Final = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def validate_prices(prices: Mapping[str, Any]) -> dict[str, Price]:
    """Check a ``configure(prices=...)`` mapping and return it as `Price` objects.

    Each value is a `Price` or a mapping with ``input`` and optionally
    ``output`` and ``cached_input`` (dollars per million tokens).

    Raises:
        TypeError: If a model name is not a string or a price is not a mapping.
        ValueError: If a price is missing ``input`` or holds a negative number.
    """
    table: dict[str, Price] = {}
    for model, spec in prices.items():
        if not isinstance(model, str):
            msg = f"prices keys must be model names (str), got {model!r}"
            raise TypeError(msg)
        if isinstance(spec, Price):
            table[model] = spec
            continue
        if not isinstance(spec, Mapping):
            msg = f"prices[{model!r}] must be a mapping with 'input' and 'output', got {spec!r}"
            raise TypeError(msg)
        unknown = set(spec) - {"input", "output", "cached_input"}
        if unknown or "input" not in spec:
            msg = (
                f"prices[{model!r}] must have 'input' and may have 'output' and "
                f"'cached_input', got keys {sorted(spec)!r}"
            )
            raise ValueError(msg)
        values = {key: spec[key] for key in ("input", "output", "cached_input") if key in spec}
        for key, value in values.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                msg = f"prices[{model!r}][{key!r}] must be a non-negative number, got {value!r}"
                raise ValueError(msg)
        table[model] = Price(
            input=float(values["input"]),
            output=float(values.get("output") or 0.0),
            cached_input=None
            if values.get("cached_input") is None
            else float(values["cached_input"]),
        )
    return table


def price_of(model: str | None, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """Return the price of *model*: overrides first, then the built-in table, else None."""
    if not model:
        return None
    for table in (overrides or {}, BUILTIN_PRICES):
        price = table.get(model)
        if price is None:
            base = _SNAPSHOT.sub("", model)
            price = table.get(base) if base != model else None
        if price is not None:
            return price
    return None


def cost_usd(
    model: str | None,
    usage: Mapping[str, Any] | None,
    overrides: Mapping[str, Price] | None = None,
) -> float | None:
    """Return the cost in dollars of a call with *usage* on *model*, or None if unknown.

    *usage* has the audit's names: ``input_tokens``, ``output_tokens``,
    ``cached_tokens``. Missing usage or an unknown model gives None.
    """
    if not usage:
        return None
    price = price_of(model, overrides)
    input_tokens = usage.get("input_tokens")
    if price is None or not isinstance(input_tokens, int):
        return None
    output_tokens = usage.get("output_tokens") or 0
    cached_tokens = usage.get("cached_tokens") or 0
    return price.cost(input_tokens, int(output_tokens), int(cached_tokens))
