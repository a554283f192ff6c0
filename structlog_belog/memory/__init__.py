"""The memory: BELog execution records and the stores that answer from them.

Owns BELog tasks (`task`: the context manager and decorator that write one
record each), what they measure (`changes`, `scoring`), the store interface
(`store`), its backends (`sqlite`, `chroma`) and how a location picks one
(`stores`), and blueprint revisions and reflection (`revision`).

May import the package, audit and core layers; registers ``run.task`` with
the core's hooks.
"""
