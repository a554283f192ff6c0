"""Vetted, VettedList: containers the code that built them has already redacted."""

from __future__ import annotations

__all__ = ["Vetted", "VettedList"]


class Vetted(dict):  # type: ignore[type-arg]
    """A dict the code that built it has already made safe to write.

    Everything in it is JSON-ready (str keys; str, int, finite float, bool,
    None, list and dict values) and has been through this process's
    `SecretRedactor` where it can hold a secret. The record path writes it as
    a plain object without walking it again: the LLM audit builds its request,
    response, usage and attempts this way, so their contents are scanned once,
    not twice. Private: a record a user logs is always walked.
    """

    __slots__ = ()


class VettedList(list):  # type: ignore[type-arg]
    """A list made safe to write by the code that built it (see `Vetted`)."""

    __slots__ = ()
