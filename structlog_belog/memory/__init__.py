"""The memory: BELog execution records and the stores that answer from them.

Owns BELog tasks (`task`: the context manager and decorator that write one
record each; `recording`: where they are indexed and their history read),
what they measure (`watch`: files changed under the watched roots;
`changes`: the explicit snapshot modes; `scoring`: the efficiency score;
`evidence`: dependencies, connections, risk and suggestions; `measure`: the
glue that fills a record), the store interface (`store`), its backends
(`sqlite`, `chroma`, `chroma_server` for a ChromaDB server shared by many
workers — its rows in `chroma_rows`, each task's chain of attempts in
`chroma_chain` — `shared` for sessions writing to one) and how a location picks one
(`stores`), blueprint
revisions and reflection (`revision`), and the loop's next step
(`next_step`).

May import the package, audit and core layers; registers ``run.task`` with
the core's hooks.
"""
