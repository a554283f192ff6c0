"""Child-process scenarios of the reliability suite: ``python -m tests.reliability._child NAME``.

Each scenario is what a real application does (configure, open a session,
log from threads or children, exit or get killed); the test that starts it
checks the files afterwards. A scenario that reports results prints one JSON
document as its last line of stdout.
"""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import math
import mmap
import os
import random
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import structlog

import structlog_belog as belog

TEXT = "the quick brown fox jumps over the lazy dog; "


def pad(n: int) -> str:
    """A readable filler string of *n* characters."""
    reps = n // len(TEXT) + 1
    return (TEXT * reps)[:n]


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM), in KiB.

    Not ``getrusage().ru_maxrss``: Linux carries that over from the parent
    across fork and exec, so a child of a big pytest process would report
    the parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0  # pragma: no cover - Linux always reports VmHWM


def say(result: Any) -> None:
    """Print the scenario's result as the last line of stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# -- case 1: one of eight writer processes -----------------------------------


def line_size(rng: random.Random, seq: int) -> int:
    """Target payload size of record *seq*: mostly small, some up to 64 KiB, 1 MiB now and then."""
    if seq % 5000 == 2500:
        return 1 << 20
    r = rng.random()
    if r < 0.01:
        return rng.randrange(8 << 10, (64 << 10) - 256)
    if r < 0.10:
        return rng.randrange(512, 8 << 10)
    return rng.randrange(0, 400)


def writer(proc: str, n: str) -> None:
    """Join the session from the environment and log *n* numbered records."""
    belog.configure(console=False)
    log = structlog.get_logger("rel.writer")
    stdlog = logging.getLogger("rel.writer.stdlib")
    p = int(proc)
    rng = random.Random(p)  # noqa: S311 - reproducible test data
    for seq in range(int(n)):
        size = line_size(rng, seq)
        if size >= 1 << 20:
            # 16 fields of 64 KiB: a 1 MiB line, each value under the truncation cap.
            chunks = {f"part{j:02d}": pad(64 << 10) for j in range(16)}
            log.info("rec", proc=p, seq=seq, **chunks)
        elif seq % 3 == 0:
            stdlog.info("rec", extra={"proc": p, "seq": seq, "pad": pad(size)})
        else:
            log.info("rec", proc=p, seq=seq, pad=pad(size))


# -- case 3: SIGKILL at a random moment --------------------------------------

KILL_THREADS = 4


def _kill_target(log_dir: str, counters: str, ready_fd: int) -> None:
    """Log from several threads forever; after each call returns, publish its seq."""
    belog.configure(log_dir=log_dir, console=False, package_dir=log_dir + "-pkg")
    fd = os.open(counters, os.O_RDWR)
    mm = mmap.mmap(fd, 8 * KILL_THREADS)
    run = belog.session("killed", package=False).__enter__()
    assert run.directory is not None

    def loop(t: int) -> None:
        slog = structlog.get_logger("rel.kill")
        stdlog = logging.getLogger("rel.kill.stdlib")
        rng = random.Random(t)  # noqa: S311 - reproducible test data
        seq = 0
        while True:
            size = rng.choice((50, 300, 2000, 20_000, 60_000))
            if seq % 2:
                slog.info("rec", t=t, seq=seq, pad=pad(size))
            else:
                stdlog.info("rec", extra={"t": t, "seq": seq, "pad": pad(size)})
            # The call returned: from now on this record must be on disk.
            struct.pack_into("<q", mm, 8 * t, seq)
            seq += 1

    for t in range(KILL_THREADS):
        struct.pack_into("<q", mm, 8 * t, -1)
        threading.Thread(target=belog.propagate(loop), args=(t,), daemon=True).start()
    os.write(ready_fd, b"r")
    while True:
        time.sleep(1)


def sigkill_runs(out: str, runs: str, seed: str) -> None:
    """Fork *runs* logging children and SIGKILL each at a random moment."""
    rng = random.Random(int(seed))  # noqa: S311 - reproducible test data
    results = []
    for i in range(int(runs)):
        log_dir = os.path.join(out, f"run{i:02d}")
        counters = log_dir + ".counters"
        with open(counters, "wb") as f:
            f.write(b"\0" * 8 * KILL_THREADS)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            try:
                _kill_target(log_dir, counters, w)
            finally:
                os._exit(1)
        os.close(w)
        os.read(r, 1)
        os.close(r)
        delay = rng.uniform(0.0, 0.3)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        with open(counters, "rb") as f:
            last = list(struct.unpack(f"<{KILL_THREADS}q", f.read()))
        results.append(
            {
                "log_dir": log_dir,
                "delay": delay,
                "last_returned": last,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            }
        )
    say(results)


# -- case 4: signals and exits -----------------------------------------------


def signal_target(log_dir: str, where: str, handle: str, durability: str) -> None:
    """Open a session (in the main thread or a worker) and log until signalled."""
    if handle == "app":

        def app_handler(_signum: int, _frame: Any) -> None:
            sys.stderr.write("the application's own handler ran\n")
            sys.exit(0)

        signal.signal(signal.SIGTERM, app_handler)
    belog.configure(
        log_dir=log_dir,
        package_dir=log_dir + "-pkg",
        console=False,
        durability=durability,
        handle_signals=handle != "0",
    )
    log = structlog.get_logger("rel.signal")
    ready = threading.Event()

    def work() -> None:
        with belog.session("signalled") as run:
            if where == "main-100k":
                # A session with some history, so finalizing has real work.
                for i in range(100_000):
                    log.info("history", i=i, pad=pad(200))
            sys.stdout.write(json.dumps({"session_id": run.id}) + "\n")
            sys.stdout.flush()
            ready.set()
            i = 0
            while True:
                log.info("tick", i=i)
                i += 1
                time.sleep(0.001)

    if where in ("main", "main-100k"):
        work()
    else:
        # The main thread waits as a server's would (not in join(), which
        # CPython 3.11 abandons when a signal handler raises in it).
        threading.Thread(target=work, daemon=where == "daemon").start()
        ready.wait()
        threading.Event().wait()


def exit_mode(log_dir: str, how: str, durability: str, in_session: str, n: str) -> None:
    """Log *n* records, then leave by *how*: normal, sys.exit or an uncaught exception."""
    belog.configure(log_dir=log_dir, console=False, durability=durability)
    slog = structlog.get_logger("rel.exit")
    stdlog = logging.getLogger("rel.exit.stdlib")

    def body() -> None:
        for i in range(int(n)):
            if i % 2:
                slog.info("rec", i=i)
            else:
                stdlog.info("rec", extra={"i": i})
        if how == "sys.exit":
            sys.exit(3)
        if how == "exception":
            raise RuntimeError("uncaught on purpose")

    if in_session == "1":
        with belog.session("exiting", package=False):
            body()
    else:
        body()


# -- case 5: multiprocessing children ----------------------------------------


def _mp_child(env: dict[str, str], method: str, n: int) -> None:
    if method != "fork":
        os.environ.update(env)
        belog.configure(console=False, durability=env["REL_DURABILITY"])
    slog = structlog.get_logger("rel.mp")
    stdlog = logging.getLogger("rel.mp.stdlib")
    for i in range(n):
        if i % 2:
            slog.info("rec", i=i, child=os.getpid())
        else:
            stdlog.info("rec", extra={"i": i, "child": os.getpid()})
    # No flush, no close: the child simply returns.


def mp_children(log_dir: str, method: str, children: str, n: str, durability: str) -> None:
    """Start *children* multiprocessing children by *method*; each logs *n* records."""
    import multiprocessing

    belog.configure(log_dir=log_dir, console=False, durability=durability)
    ctx = multiprocessing.get_context(method)
    with belog.session("mp", package=False) as run:
        env = {**belog.session_env(), "REL_DURABILITY": durability}
        procs = [
            ctx.Process(target=_mp_child, args=(env, method, int(n))) for _ in range(int(children))
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        codes = [p.exitcode for p in procs]
        pids = [p.pid for p in procs]
    say({"session_id": run.id, "exitcodes": codes, "pids": pids})


def fork_locked(log_dir: str, children: str) -> None:
    """Fork while other threads hold the logging locks; each child logs and exits."""
    belog.configure(log_dir=log_dir, console=False)
    slog = structlog.get_logger("rel.fork")
    stdlog = logging.getLogger("rel.fork.stdlib")
    stop = threading.Event()

    def busy(t: int) -> None:
        i = 0
        while not stop.is_set():
            slog.info("busy", t=t, i=i)
            stdlog.info("busy %d", i)
            i += 1

    held = threading.Event()
    release = threading.Event()

    def hold(run: belog.Run) -> None:
        # At fork time another thread is inside the router's write lock, the
        # stdlib handler's lock and the session's lock. (Not logging's module
        # lock: os.fork itself waits for that one, by CPython's at-fork hook.)
        from structlog_belog.core import config as _config

        router = _config.ensure_pipeline().router
        assert router is not None
        handler = logging.getLogger().handlers[-1]
        with router._lock, run._lock:
            handler.acquire()
            try:
                held.set()
                release.wait()
            finally:
                handler.release()

    results = []
    with belog.session("forking", package=False) as run:
        threads = [threading.Thread(target=busy, args=(t,)) for t in range(2)]
        threads.append(threading.Thread(target=hold, args=(run,)))
        for t in threads:
            t.start()
        held.wait()
        for k in range(int(children)):
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                try:
                    for i in range(100):
                        slog.info("child", k=k, i=i)
                        stdlog.info("child %d", i, extra={"k": k})
                    logging.getLogger(f"rel.fork.child{k}").info("new logger %d", k)
                    run.set_metric("child", k)
                    run.add_output(log_dir)
                finally:
                    os._exit(0)
            deadline = t0 + 7.0
            status = None
            while time.monotonic() < deadline:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
                    break
                time.sleep(0.005)
            elapsed = time.monotonic() - t0
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            results.append({"pid": pid, "exited": status is not None, "seconds": elapsed})
        release.set()
        stop.set()
        for t in threads:
            t.join()
    say({"session_id": run.id, "children": results})


# -- case 6: disk faults ------------------------------------------------------


class _Logger:
    """Logs numbered records by phase, counting any exception that escapes."""

    def __init__(self) -> None:
        self.seq = 0
        self.exceptions: list[str] = []
        self.phases: dict[str, list[int]] = {}
        self.sessions: list[str] = []
        self.slog = structlog.get_logger("rel.disk")
        self.stdlog = logging.getLogger("rel.disk.stdlib")

    def records(self, phase: str, n: int, size: int = 200) -> None:
        seqs = self.phases.setdefault(phase, [])
        for _ in range(n):
            try:
                if self.seq % 2:
                    self.slog.info("rec", seq=self.seq, phase=phase, pad=pad(size))
                else:
                    self.stdlog.info(
                        "rec", extra={"seq": self.seq, "phase": phase, "pad": pad(size)}
                    )
            except Exception as exc:
                self.exceptions.append(repr(exc))
            seqs.append(self.seq)
            self.seq += 1

    def enter(self, title: str) -> belog.Run | None:
        try:
            run = belog.session(title, package=False)
            self.sessions.append(run.id)
            return run.__enter__()
        except Exception as exc:
            self.exceptions.append(repr(exc))
            return None

    def exit(self, run: belog.Run | None) -> None:
        try:
            if run is not None:
                run.__exit__(None, None, None)
        except Exception as exc:
            self.exceptions.append(repr(exc))

    def configure(self, log_dir: Path) -> None:
        try:
            belog.configure(log_dir=log_dir, console=False, app_name="rel", handle_signals=False)
        except Exception as exc:
            self.exceptions.append(repr(exc))

    def result(self) -> dict[str, Any]:
        from structlog_belog.core import config as _config

        router = _config.ensure_pipeline().router
        assert router is not None
        return {
            "phases": self.phases,
            "exceptions": self.exceptions,
            "sessions": self.sessions,
            "dropped": router.drops.total,
            "dropped_by_session": {str(k): v for k, v in router.drops.by_session.items()},
        }


def _router_close() -> None:
    # Linux refuses to make a mount read-only while files on it are open for
    # writing: the router's descriptors are closed first (it reopens lazily).
    from structlog_belog.core import config as _config

    router = _config.ensure_pipeline().router
    assert router is not None
    router.close()


def _to_devfull(paths: list[Path], log_dir: Path) -> None:
    """The disk is full: open descriptors and the files' paths now lead to /dev/full."""
    full = os.open("/dev/full", os.O_WRONLY)
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(str(log_dir)):
            os.dup2(full, int(name))
    os.close(full)
    for path in paths:
        if path.exists():
            path.rename(path.with_name(path.name + ".real"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to("/dev/full")


def _from_devfull(paths: list[Path]) -> None:
    for path in paths:
        path.unlink()
        real = path.with_name(path.name + ".real")
        if real.exists():
            real.rename(path)


def preload_modules() -> None:
    """Import every module the library may import lazily, while they can be read.

    After `drop_privileges` the process may no longer read its own checkout
    or interpreter (a clone inside a 0700 folder such as ``/root``): what is
    imported later would fail there, not in the library.
    """
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(belog.__path__, "structlog_belog."):
        if info.name.rsplit(".", 1)[-1] in ("__main__", "otel", "_otel", "_otel_genai", "chroma"):
            continue  # optional extras, never used by these cases
        try:
            importlib.import_module(info.name)
        except ImportError:
            continue
    for name in (
        "sqlite3",
        "zstandard",
        "jinja2",
        "jinja2.sandbox",
        "markupsafe",
        "hashlib",
        "shutil",
        "tempfile",
        "platform",
        "socket",
        "getpass",
        "encodings.idna",
        "encodings.ascii",
        "encodings.latin_1",
        "uuid",
        "importlib.resources",
        "rich.console",
        "rich.markdown",
    ):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    # Templates and schemas are read lazily too: read them now (cached).
    from importlib import resources

    for folder in ("templates", "schemas"):
        for entry in (resources.files("structlog_belog") / folder).iterdir():
            if entry.name.endswith((".j2", ".json")):
                entry.read_bytes()


def drop_privileges() -> None:
    """Become ``nobody`` (root ignores permission bits) after preloading what is needed."""
    preload_modules()
    os.setgid(65534)
    os.setuid(65534)


def disk_fault(root: str, fault: str, phase: str) -> None:
    """Log through *fault* injected at configure time or mid-run, then clear it."""
    import resource
    import subprocess

    base = Path(root)
    log_dir = base / "logs"
    lg = _Logger()
    if fault == "eacces" and os.getuid() == 0:
        # root bypasses permission bits: run as nobody, in a folder nobody owns.
        drop_privileges()
    if fault == "erofs":
        subprocess.run(["mount", "--bind", root, root], check=True)

    def fault_on() -> None:
        if fault == "erofs":
            subprocess.run(["mount", "-o", "remount,bind,ro", root, root], check=True)
        elif fault == "eacces":
            (base if phase == "configure" else log_dir / "sessions").chmod(0o500)

    def fault_off() -> None:
        if fault == "erofs":
            subprocess.run(["mount", "-o", "remount,bind,rw", root, root], check=True)
        elif fault == "eacces":
            (base if phase == "configure" else log_dir / "sessions").chmod(0o700)

    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    if fault == "devfull":
        global_path = log_dir / "rel.jsonl"
        if phase == "configure":
            _to_devfull([global_path], log_dir)
            lg.configure(log_dir)
            run = belog.session("full-disk", package=False)
            lg.sessions.append(run.id)
            paths = [global_path, log_dir / "sessions" / run.id / "processing.jsonl"]
            _to_devfull(paths[1:], log_dir)
            run.__enter__()
            lg.records("fault", 100)
        else:
            lg.configure(log_dir)
            run_ = lg.enter("full-disk")
            assert run_ is not None
            run = run_
            lg.records("before", 100)
            paths = [global_path, log_dir / "sessions" / run.id / "processing.jsonl"]
            _to_devfull(paths, log_dir)
            lg.records("fault", 100)
        _from_devfull(paths)
        lg.records("cleared", 100)
        lg.exit(run)
    elif fault == "efbig":
        if phase == "configure":
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
            lg.configure(log_dir)
            run_ = lg.enter("file-too-big")
            lg.records("fault", 100, size=1000)
        else:
            lg.configure(log_dir)
            run_ = lg.enter("file-too-big")
            assert run_ is not None
            assert run_.directory is not None
            lg.records("before", 100, size=1000)
            size = (run_.directory / "processing.jsonl").stat().st_size
            # Room for a few more records, then one cut short mid-line.
            resource.setrlimit(resource.RLIMIT_FSIZE, (size + 5500, hard))
            lg.records("fault", 100, size=1000)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        lg.records("cleared", 100, size=1000)
        lg.exit(run_)
    else:  # erofs, eacces
        if phase == "configure":
            fault_on()
            lg.configure(log_dir)
            run_ = lg.enter("read-only")
        else:
            lg.configure(log_dir)
            first = lg.enter("before-the-fault")
            lg.records("before", 100)
            lg.exit(first)
            _router_close()
            fault_on()
            run_ = lg.enter("read-only")
        lg.records("fault", 100)
        fault_off()
        lg.records("cleared", 100)
        lg.exit(run_)
    say(lg.result())


# -- case 13: a sink blocked for 5 s in buffered mode -------------------------


def blocked_sink(log_dir: str, calls: str, size: str, block_s: str) -> None:
    """Log while the router's writer is held up for *block_s* seconds; time every call.

    The router's background writer holds its flush lock while it writes, so
    a write blocked in the kernel holds it too. The sink used to be a FIFO
    nobody read; the router now refuses FIFOs (it writes regular files only),
    so the writer is held here by taking that lock for the blocked time: the
    flusher waits on it exactly as it waits behind a blocked ``write``.
    """
    belog.configure(log_dir=log_dir, console=False, durability="buffered", app_name="rel")
    from structlog_belog.core import config as _config

    router = _config.ensure_pipeline().router
    assert router is not None
    run = belog.session("blocked", package=False)
    t0 = time.monotonic()
    unblocked_at: list[float] = []

    calls_done = threading.Event()
    router._flush_lock.acquire()  # the writer is blocked from now on

    def drain() -> None:
        # Blocked for block_s seconds at least, and until the calls are done
        # (on a loaded machine they may take longer); a log call held up by
        # the sink would never finish, and after 60 s the sink gives in.
        time.sleep(float(block_s))
        calls_done.wait(60)
        unblocked_at.append(time.monotonic() - t0)
        router._flush_lock.release()

    drainer = threading.Thread(target=drain)
    drainer.start()
    slog = structlog.get_logger("rel.blocked")
    filler = pad(int(size))
    n = int(calls)
    lat = [0] * n
    rss0 = peak_rss_kib()
    perf = time.perf_counter_ns
    with run:
        for i in range(n):
            t = perf()
            slog.info("rec", i=i, pad=filler)
            lat[i] = perf() - t
        done_at = time.monotonic() - t0
        calls_done.set()
        rss1 = peak_rss_kib()
        dropped = router.dropped(run.id)
    drainer.join()
    lat.sort()
    say(
        {
            "session_id": run.id,
            "calls": n,
            "calls_done_at_s": done_at,
            "unblocked_at_s": unblocked_at[0],
            "p50_us": lat[n // 2] / 1000,
            "p99_us": lat[int(n * 0.99)] / 1000,
            "max_us": lat[-1] / 1000,
            "rss_growth_mib": (rss1 - rss0) / 1024,
            "buffer_cap_mib": router.buffer_bytes / (1 << 20),
            "dropped": dropped,
        }
    )


# -- case 10: file modes -------------------------------------------------------


def _child_logs(n: int) -> None:
    for i in range(n):
        structlog.get_logger("rel.modes.child").info("child", i=i)


def file_modes(root: str, umask: str) -> None:
    """Under *umask*, with chmod disabled, make every kind of file belog writes."""
    import multiprocessing
    import pathlib

    from structlog_belog.core.state import emit

    os.umask(int(umask, 8))
    chmods: list[str] = []

    def no_chmod(*args: Any, **kwargs: Any) -> None:
        chmods.append(repr(args[:2]))

    # Modes must be right when a file or folder is created, not fixed after:
    # with chmod disabled, anything created wider and chmod-ed later shows.
    os.chmod = no_chmod  # type: ignore[assignment]
    os.fchmod = no_chmod  # type: ignore[assignment]
    pathlib.Path.chmod = no_chmod  # type: ignore[assignment,method-assign]
    base = Path(root)
    content = base / "content"
    content.mkdir()
    (content / "result.json").write_text("{}")
    belog.configure(
        log_dir=base / "logs", package_dir=base / "packages", console=False, app_name="rel"
    )
    structlog.get_logger("rel.modes").info("outside any session")
    with belog.session("modes") as run:
        with run.stage("one"):
            structlog.get_logger("rel.modes").info("inside")
            emit("call", kind="llm_call", call_id="c1", model="m", api="chat.completions")
            with run.task("write the result", expected_outcome="a file") as task:
                task.suggest("cache the template")
        p = multiprocessing.get_context("fork").Process(target=_child_logs, args=(10,))
        p.start()
        p.join()
        run.add_output(content / "result.json")
        run.add_content(content, as_name="03_output")
    say({"session_id": run.id, "package": str(run.package_path), "chmod_calls": chmods})


# -- case 7: the hostile value corpus -----------------------------------------


class _ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("repr refuses")

    __str__ = __repr__


class _StrRaises:
    def __str__(self) -> str:
        raise ValueError("str refuses")


def _deep(n: int) -> Any:
    value: Any = "bottom"
    for i in range(n):
        value = [value] if i % 2 else {"d": value}
    return value


def corpus() -> dict[str, Any]:
    cyclic_dict: dict[str, Any] = {}
    cyclic_dict["self"] = cyclic_dict
    cyclic_list: list[Any] = []
    cyclic_list.append(cyclic_list)
    return {
        "cyclic dict": cyclic_dict,
        "cyclic list": cyclic_list,
        "lone surrogate": "a\ud800b\udfff",
        "nan": math.nan,
        "infinity": math.inf,
        "-infinity": -math.inf,
        "nested nan": {"x": [math.nan, {"y": math.inf}]},
        "bytes": b"\x00\xff\xfe binary",
        "bytearray": bytearray(b"\x80abc"),
        "huge int": 2**300,
        "negative huge int": -(2**100),
        "non-string keys": {1: "a", None: "b", (1, 2): "c", 1.5: "d", frozenset({1}): "e"},
        "repr raises": _ReprRaises(),
        "str raises": _StrRaises(),
        "repr raises nested": {"k": [_ReprRaises()]},
        "10,000-deep nesting": _deep(10_000),
        "set": {1, 2, 3},
        "object": object(),
        "decimal": decimal.Decimal("1e999999"),
        "datetime": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        "type": int,
        "exception": ValueError("boom"),
        "control characters": "\x00\x01\x1b[2J\x7f",
    }


def bad_values(log_dir: str) -> None:
    """Log every corpus value through four paths; report any exception that escapes."""
    belog.configure(log_dir=log_dir, console=False, app_name="rel")
    slog = structlog.get_logger("rel.bad")
    stdlog = logging.getLogger("rel.bad.stdlib")
    calls: list[str] = []
    exceptions: list[str] = []
    with belog.session("bad-values", package=False) as run:
        for name, value in corpus().items():
            for path in ("field", "event", "extra", "args", "msg"):
                case = f"{path}:{name}"
                calls.append(case)
                try:
                    if path == "field":
                        slog.info("bad", case=case, v=value)
                    elif path == "event":
                        slog.info(value, case=case)
                    elif path == "extra":
                        stdlog.info("bad", extra={"case": case, "v": value})
                    elif path == "args":
                        stdlog.info("bad %s %r", value, value, extra={"case": case})
                    else:
                        stdlog.info(value, extra={"case": case})
                except Exception as exc:
                    exceptions.append(f"{case}: {exc!r}")
    say({"session_id": run.id, "calls": calls, "exceptions": exceptions})


# -- case 7: a 100 MB string -----------------------------------------------------


def big_string(log_dir: str, mb: str) -> None:
    """Log a *mb* MB string (structlog field, event and stdlib extra); measure peak RSS growth."""
    from structlog_belog.core import config as _config

    belog.configure(log_dir=log_dir, console=False, app_name="rel")
    slog = structlog.get_logger("rel.big")
    stdlog = logging.getLogger("rel.big.stdlib")
    pipeline = _config.ensure_pipeline()
    assert pipeline.truncator is not None
    cap = pipeline.truncator.max_chars
    with belog.session("big", package=False) as run:
        big = "x" * (int(mb) * 1_000_000)
        warm = pad(cap * 8)
        rss_base = peak_rss_kib()
        # Warm up every path at this baseline with a value 8x the cap: the
        # cap-sized buffers any long value needs are counted once here, so
        # the growth below is what the value's 100 MB size itself costs.
        slog.info("warm", v=warm)
        slog.info(warm)
        stdlog.info("warm", extra={"v": warm})
        del warm
        rss0 = peak_rss_kib()
        t0 = time.perf_counter()
        slog.info("big", v=big)
        slog.info(big)
        stdlog.info("big", extra={"v": big})
        seconds = time.perf_counter() - t0
        rss1 = peak_rss_kib()
        # The same calls again under tracemalloc: the peak of Python's heap
        # above what it held before, byte-exact where RSS is page-coarse.
        import tracemalloc

        tracemalloc.start()
        held = tracemalloc.get_traced_memory()[0]
        slog.info("big", v=big)
        slog.info(big)
        stdlog.info("big", extra={"v": big})
        heap_peak = tracemalloc.get_traced_memory()[1] - held
        tracemalloc.stop()
    say(
        {
            "session_id": run.id,
            "cap_chars": cap,
            "heap_peak_kib": heap_peak / 1024,
            "rss_growth_kib": rss1 - rss0,
            "warmup_growth_kib": rss0 - rss_base,
            "seconds": seconds,
        }
    )


# -- case 12: reading zstd bombs ------------------------------------------------


def read_bomb(member: str, case: str) -> None:
    """Read a hostile zstd member the way belog reads packages; report the error and peak RSS."""
    import shutil

    from structlog_belog import read_package
    from structlog_belog.package.reader import iter_lines

    t0 = time.perf_counter()
    error = None
    try:
        if case == "lines-bomb":
            for _ in iter_lines(member, max_output_bytes=256 * 1024 * 1024):
                pass
        else:
            # As a member of a package: logs/processing.jsonl.zst next to real metadata.
            package = Path(member).parent / "pkg"
            (package / "logs").mkdir(parents=True)
            (package / "logs" / "metadata.json").write_text('{"session_id": "sess_x"}')
            (package / "logs" / "execution_summary.md").write_text("# x\n")
            shutil.move(member, package / "logs" / "processing.jsonl.zst")
            for _ in read_package(package).records():
                pass
    except Exception as exc:
        error = type(exc).__name__
    say(
        {
            "error": error,
            "seconds": time.perf_counter() - t0,
            "peak_rss_mib": peak_rss_kib() / 1024,
        }
    )


SCENARIOS = {
    "writer": writer,
    "sigkill_runs": sigkill_runs,
    "signal_target": signal_target,
    "exit_mode": exit_mode,
    "mp_children": mp_children,
    "fork_locked": fork_locked,
    "disk_fault": disk_fault,
    "blocked_sink": blocked_sink,
    "file_modes": file_modes,
    "big_string": big_string,
    "bad_values": bad_values,
    "read_bomb": read_bomb,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
