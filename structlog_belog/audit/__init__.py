"""The audit: everything about LLM calls.

Owns capturing OpenAI calls (`capture`: every request the SDK sends, at its
request level, with the bodies read by `body`; `wrap`: the decorator and the
client/SDK instrumentation), streams (`stream`; what the audit's include_usage adds is
cut from their bytes by `usage_cut`), the call in flight with its
HTTP attempts and its record (`call`, `record`), prices (`prices`), call statistics
for reports (`stats`) and the offline fake LLM the demo and tests use
(`fake_llm`, `fake_llm_content`).

May import the core only; writes its ``llm_call`` records through the core's
record path.
"""
