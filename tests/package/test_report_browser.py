"""The run report in a real headless Chromium: it renders, answers questions, runs nothing.

Every report here is a package member made by a real run in a child
interpreter: the real ``openai`` SDK against an ``httpx.MockTransport`` (or
the packaged fake model), real stages, tasks, outputs, metrics and errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Page, chromium, require_chromium
from tests.conftest import REPO_ROOT

# -- the runs -----------------------------------------------------------------------

_RUN = r"""
import json, logging, sys
from pathlib import Path
import httpx, openai
import structlog_belog as belog

out = Path(sys.argv[1])
spec = json.loads(Path(sys.argv[2]).read_text("utf-8"))

def answer(request):
    body = json.loads(request.content)
    prompt = body["messages"][-1]["content"]
    if prompt.startswith("FAIL"):
        return httpx.Response(500, json={"error": {"message": "upstream broke: " + prompt,
                                                   "type": "server_error"}})
    return httpx.Response(200, json={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ANSWER " + prompt}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

client = belog.instrument_openai(openai.OpenAI(
    api_key="-".join(("test", "placeholder")), base_url="http://fake.invalid/v1", max_retries=0,
    http_client=httpx.Client(transport=httpx.MockTransport(answer))))
belog.configure(log_dir=out / "logs", package_dir=out / "packages", console=False,
                handle_signals=False)
log = logging.getLogger("report.test")
work = out / "work"
work.mkdir(parents=True)
try:
    with belog.session(spec["title"], blueprint_id="bp_report", blueprint_version="v2") as run:
        for st in spec["stages"]:
            with run.stage(st["name"]):
                if st.get("inner"):
                    with run.stage(st["inner"]):
                        log.info("inside the inner stage")
                for t in st["tasks"]:
                    try:
                        with run.task(t["name"], expected_outcome="an answer") as task:
                            try:
                                client.chat.completions.create(
                                    model=t.get("model", "gpt-4o-mini"),
                                    messages=[{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": t["prompt"]}])
                            finally:
                                if t.get("output"):
                                    path = work / t["output"]
                                    path.write_text("made by " + t["name"], "utf-8")
                                    run.add_output(path)
                            task.suggest("suggestion for " + t["name"])
                    except openai.APIError as exc:
                        try:
                            raise RuntimeError("task failed: " + t["name"]) from exc
                        except RuntimeError:
                            log.exception(t.get("error", "a call failed"))
        for name, value in spec.get("metrics", {}).items():
            run.set_metric(name, value)
        if spec.get("raise"):
            raise ValueError(spec["raise"])
except ValueError:
    pass
print(run.package_path)
"""


def _make_run(tmp: Path, spec: dict[str, Any], env: dict[str, str]) -> Path:
    """Run *spec* in a child interpreter; return the report file of its package."""
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec), "utf-8")
    script = tmp / "run.py"
    script.write_text(_RUN, "utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp / "out"), str(spec_path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert 0 == proc.returncode, proc.stderr
    package = Path(proc.stdout.strip().splitlines()[-1])
    report = package / "logs" / "execution_report.html"
    assert report.is_file(), sorted(p.name for p in (package / "logs").iterdir())
    return report


STORY = {
    "title": "report story",
    "stages": [
        {
            "name": "preprocessing",
            "inner": "parsing",
            "tasks": [
                {"name": "Summarise", "prompt": "Summarise the naval notes", "output": "a.md"}
            ],
        },
        {
            "name": "generation",
            "tasks": [
                {
                    "name": "Write beginner",
                    "prompt": "Write the beginner level",
                    "output": "b.json",
                },
                {"name": "Write advanced", "prompt": "Write the advanced level", "model": "gpt-4o"},
                {"name": "Write expert", "prompt": "FAIL on the expert level", "error": "expert"},
            ],
        },
    ],
    "metrics": {"schema_compliance": 0.5},
    "raise": "the validation found 1 broken supertask",
}


@pytest.fixture(scope="module")
def story_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a run with nested stages, four tasks, a failed call and an exception."""
    require_chromium()
    return _make_run(tmp_path_factory.mktemp("story"), STORY, _child_env())


@pytest.fixture(scope="module")
def browser() -> Any:
    """One headless Chromium for the module."""
    with chromium() as b:
        yield b


def _open(browser: Any, report: Path) -> Page:
    page: Page = browser.new_page()
    page.open(report)
    page.wait_for("document.body.dataset.ready === 'true'")
    return page


def _rows(page: Page) -> list[str]:
    """The call IDs the calls table lists (all of them, scrolling through)."""
    return page.js("""(() => {
        const box = document.getElementById('calls-table');
        const ids = new Set();
        for (let y = 0; ; y += box.clientHeight) {
            box.scrollTop = y; box.dispatchEvent(new Event('scroll'));
            document.querySelectorAll('#calls-body .vt-row').forEach(r => ids.add(r.dataset.call));
            if (y > box.scrollHeight) break;
        }
        box.scrollTop = 0; box.dispatchEvent(new Event('scroll'));
        return [...ids];
    })()""")


def _choose(page: Page, select: str, value: str) -> None:
    """Pick *value* in the filter *select*, as a user would."""
    page.js(
        f"(() => {{ const f = document.getElementById({json.dumps(select)});"
        f"f.value = {json.dumps(value)}; f.dispatchEvent(new Event('change')); }})()"
    )


class TestReportInChromium:
    def test_renders(self, browser: Any, story_report: Path) -> None:
        """The page loads from file://, fills its header and raises no script error."""
        page = _open(browser, story_report)
        assert "report story" == page.js("document.getElementById('title').textContent")
        facts = page.js("document.getElementById('facts').textContent")
        for expected in ("Failed", "LLM calls 4", "bp_report v2", "Records"):
            assert expected in facts
        assert [] == page.exceptions
        assert [] == page.requests
        assert [] == page.dialogs

    def test_timeline_has_one_bar_per_stage_and_task(
        self, browser: Any, story_report: Path
    ) -> None:
        """Three stages (one nested) and four tasks: seven bars, the failed task marked."""
        page = _open(browser, story_report)
        page.click('#tabs button[data-tab="timeline"]')
        bars = page.js(
            "[...document.querySelectorAll('#tab-timeline .bar')]"
            ".map(b => [b.dataset.kind, b.dataset.name, b.dataset.failed === 'true'])"
        )
        assert sorted(
            [
                ["stage", "preprocessing", False],
                ["stage", "parsing", False],
                ["stage", "generation", False],
                ["task", "Summarise", False],
                ["task", "Write beginner", False],
                ["task", "Write advanced", False],
                ["task", "Write expert", True],
            ]
        ) == sorted(bars)
        depth = page.js(
            "[...document.querySelectorAll('#tab-timeline .tl-label')]"
            ".map(l => [l.textContent, parseInt(l.style.paddingLeft)])"
        )
        pad = dict(depth)
        assert pad["parsing"] > pad["preprocessing"]
        assert pad["Summarise"] > pad["preprocessing"]

    def test_clicking_a_call_shows_its_prompt(self, browser: Any, story_report: Path) -> None:
        """A click on a row of the calls table opens the call with its messages and answer."""
        page = _open(browser, story_report)
        page.click('#tabs button[data-tab="calls"]')
        assert 4 == len(_rows(page))
        page.click("#calls-body .vt-row")
        text = page.js("document.getElementById('detail').textContent")
        assert "Summarise the naval notes" in text
        assert "ANSWER Summarise the naval notes" in text
        assert "Be brief." in text
        assert page.js("!document.getElementById('detail').hidden")

    def test_search_and_filters_narrow_the_table(self, browser: Any, story_report: Path) -> None:
        """Search looks through prompts and answers; stage, model and status filters narrow."""
        page = _open(browser, story_report)
        page.click('#tabs button[data-tab="calls"]')
        page.type_into("#f-search", "advanced level")
        page.wait_for("document.querySelectorAll('#calls-body .vt-row').length === 1")
        assert ["Write advanced"] == page.js(
            "[...document.querySelectorAll('#calls-body .vt-row span:nth-child(4)')]"
            ".map(s => s.textContent)"
        )
        page.js("(() => { const s = document.getElementById('f-search'); s.value = '';"
                "s.dispatchEvent(new Event('input')); })()")  # fmt: skip
        page.wait_for("document.querySelectorAll('#calls-body .vt-row').length === 4")
        for select, value, expected in (
            ("f-stage", "=generation", 3),
            ("f-model", "=gpt-4o", 1),
            ("f-status", "=error", 1),
        ):
            _choose(page, select, value)
            assert expected == len(_rows(page)), select
            _choose(page, select, "")

    def test_an_output_leads_to_its_calls_and_back(self, browser: Any, story_report: Path) -> None:
        """Outputs tab → the call behind b.json (its prompt shown) → back to the output."""
        page = _open(browser, story_report)
        page.click('#tabs button[data-tab="outputs"]')
        rows = page.js(
            "[...document.querySelectorAll('#tab-outputs tr[data-output-row]')]"
            ".map(r => r.textContent)"
        )
        assert 2 == len(rows)
        index = next(i for i, r in enumerate(rows) if "b.json" in r)
        page.click(f'#tab-outputs tr[data-output-row="{index}"] .call-link')
        detail = page.js("document.getElementById('detail').textContent")
        assert "Write the beginner level" in detail
        page.click("#detail .out-link")
        assert "b.json" in page.js("document.querySelector('#tab-outputs tr.hl').textContent")

    def test_why_the_run_failed_in_two_clicks(self, browser: Any, story_report: Path) -> None:
        """The status badge opens the errors: the run's traceback and the failed call."""
        page = _open(browser, story_report)
        overview = page.js("document.getElementById('tab-overview').textContent")
        assert "the validation found 1 broken supertask" in overview
        page.click("#status")
        errors = page.js("document.getElementById('tab-errors').textContent")
        assert "Traceback" in errors
        assert "ValueError: the validation found 1 broken supertask" in errors
        assert "upstream broke: FAIL on the expert level" in errors
        page.click("#tab-errors .call-link")
        assert "FAIL on the expert level" in page.js(
            "document.getElementById('detail').textContent"
        )

    def test_tasks_and_metrics(self, browser: Any, story_report: Path) -> None:
        """BELog tasks show status, score and suggestions; metrics show by name."""
        page = _open(browser, story_report)
        page.click('#tabs button[data-tab="tasks"]')
        tasks = page.js("document.getElementById('tab-tasks').textContent")
        assert "suggestion for Write beginner" in tasks
        assert "✕ failed" in tasks
        page.click('#tabs button[data-tab="metrics"]')
        assert "schema_compliance" in page.js("document.getElementById('tab-metrics').textContent")


# -- injection ------------------------------------------------------------------------

#: Fifty payloads: script tags, event handlers, javascript: URLs, </script> breaks,
#: SVG and MathML, CSS and remote resources, bidi overrides, template syntax.
PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '<svg onload="window.__pwned=1">',
    "<svg><script>window.__pwned=1</script></svg>",
    "</script><script>window.__pwned=1</script>",
    "</SCRIPT ><script>alert(1)</script>",
    "<!--<script>",
    "javascript:window.__pwned=1",
    '<a href="javascript:window.__pwned=1">click</a>',
    '<iframe src="javascript:window.__pwned=1"></iframe>',
    '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    "<body onload=window.__pwned=1>",
    "<style>body{background:url(http://127.0.0.1:9/bg.png)}</style>",
    "<link rel=stylesheet href=http://127.0.0.1:9/x.css>",
    '<img src="http://127.0.0.1:9/pixel.png">',
    '<object data="javascript:window.__pwned=1"></object>',
    '<embed src="javascript:window.__pwned=1">',
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=1>",
    '"><script>window.__pwned=1</script>',
    "'><img src=x onerror=alert(1)>",
    "<details open ontoggle=window.__pwned=1>",
    "<input autofocus onfocus=window.__pwned=1>",
    "<video><source onerror=window.__pwned=1></video>",
    '<meta http-equiv="refresh" content="0;url=javascript:window.__pwned=1">',
    '<base href="http://127.0.0.1:9/">',
    "\u202eexe.txt\u202c report",
    "\u2066<script>alert(1)</script>\u2069",
    "{{constructor.constructor('window.__pwned=1')()}}",
    "${alert(1)}",
    "\u2028</script>\u2029<script>alert(1)</script>",
    "<script src=http://127.0.0.1:9/x.js></script>",
    "<form action=http://127.0.0.1:9/><button>go</button></form>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<marquee onstart=alert(1)>",
    "x{background:expression(alert(1))}",
    '<div style="background-image:url(javascript:alert(1))">',
    "@import 'http://127.0.0.1:9/x.css';",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><script>alert(1)</script></template>",
    "<scr<script>ipt>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<!-- --!><script>alert(1)</script>",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<x onclick=alert(1)>click me</x>",
    "data:text/html,<script>alert(1)</script>",
    "__proto__",
    "constructor",
    '<img srcset="http://127.0.0.1:9/a.png 1x">',
    "\u202e<img src=x onerror=alert(1)>\u202c",
]


def _payload_spec() -> dict[str, Any]:
    """Every payload as a stage, a task, a prompt, an answer, an error, a file and a metric."""
    stages = []
    for n, p in enumerate(PAYLOADS):
        stages.append(
            {
                "name": p,
                "tasks": [
                    {
                        "name": p,
                        # One call in five fails: its error message carries the payload.
                        "prompt": ("FAIL " if n % 5 == 0 else "") + p,
                        "output": f"{n:02d}-" + p.replace("/", "_"),
                        "error": p,
                    }
                ],
            }
        )
    return {
        "title": PAYLOADS[4] + " " + PAYLOADS[1],
        "stages": stages,
        "metrics": {p: n for n, p in enumerate(PAYLOADS)},
        "raise": PAYLOADS[0] + PAYLOADS[26],
    }


@pytest.fixture(scope="module")
def payload_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a run whose every name and text is an injection payload."""
    require_chromium()
    return _make_run(tmp_path_factory.mktemp("payloads"), _payload_spec(), _child_env())


_VISIT_ALL = """(() => {
    const seen = [];
    for (const tab of ['timeline', 'calls', 'outputs', 'tasks', 'errors', 'metrics', 'overview']) {
        document.querySelector('#tabs button[data-tab="' + tab + '"]').click();
    }
    document.querySelector('#tabs button[data-tab="calls"]').click();
    const box = document.getElementById('calls-table');
    const done = new Set();
    for (let y = 0; y <= box.scrollHeight; y += 26) {
        box.scrollTop = y; box.dispatchEvent(new Event('scroll'));
        for (;;) {
            const row = [...document.querySelectorAll('#calls-body .vt-row')]
                .find(r => !done.has(r.dataset.call));
            if (!row) break;
            done.add(row.dataset.call);
            row.click();
            seen.push(document.getElementById('detail').textContent);
        }
    }
    document.querySelectorAll('#tab-errors details').forEach(d => d.open = true);
    return seen;
})()"""

_FOREIGN = """(() => {
    const bad = document.querySelectorAll(
        'img, svg, math, iframe, object, embed, video, audio, source, form, base, link, ' +
        'template, marquee, a, x, details[ontoggle], style:not(head > style)');
    const handlers = [...document.querySelectorAll('*')].filter(
        e => [...e.attributes].some(a => a.name.startsWith('on') || a.name === 'srcdoc'));
    return {
        pwned: window.__pwned === undefined ? null : window.__pwned,
        scripts: document.scripts.length,
        styles: document.styleSheets.length,
        foreign: [...bad].map(e => e.outerHTML.slice(0, 120)),
        handlers: handlers.map(e => e.outerHTML.slice(0, 120)),
        metas: document.querySelectorAll('meta').length,
    };
})()"""


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELOG_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


class TestInjection:
    def _check(self, browser: Any, report: Path) -> tuple[Page, list[str]]:
        page = _open(browser, report)
        details = page.js(_VISIT_ALL)
        browser.pump(0.5)  # let anything that was going to load or fire do so
        state = page.js(_FOREIGN)
        assert {
            "pwned": None,
            "scripts": 2,
            "styles": 1,
            "foreign": [],
            "handlers": [],
            "metas": 4,
        } == state
        assert [] == page.dialogs
        assert [] == page.requests
        assert [] == page.exceptions
        return page, details

    def test_fifty_payloads_run_nothing_and_show_as_text(
        self, browser: Any, payload_report: Path
    ) -> None:
        """0 script executions, 0 dialogs, 0 requests; every payload readable as text."""
        assert 50 == len(PAYLOADS) == len(set(PAYLOADS))
        page, details = self._check(browser, payload_report)
        text = page.js("document.body.textContent")
        assert PAYLOADS[4] + " " + PAYLOADS[1] == page.js(
            "document.getElementById('title').textContent"
        )
        bars = page.js(
            "[...document.querySelectorAll('#tab-timeline .bar')].map(b => b.dataset.name)"
        )
        assert 100 == len(bars)
        assert sorted(PAYLOADS * 2) == sorted(bars)
        called = "\n".join(details)
        missing = {
            "text": [p for p in PAYLOADS if p not in text],
            "prompts": [p for p in PAYLOADS if p not in called],
            "answers": [p for n, p in enumerate(PAYLOADS) if n % 5 and "ANSWER " + p not in called],
            "errors": [
                p
                for n, p in enumerate(PAYLOADS)
                if not n % 5 and "upstream broke: FAIL " + p not in text
            ],
            "files": [
                p for n, p in enumerate(PAYLOADS) if f"{n:02d}-" + p.replace("/", "_") not in text
            ],
        }
        assert {"text": [], "prompts": [], "answers": [], "errors": [], "files": []} == missing
        assert 50 == len(details)

    def test_without_the_policy_nothing_runs_either(
        self, browser: Any, payload_report: Path, tmp_path: Path
    ) -> None:
        """With the Content-Security-Policy removed, the page still runs none of the payloads."""
        html = payload_report.read_text("utf-8")
        start = html.index('<meta http-equiv="Content-Security-Policy"')
        end = html.index(">", start) + 1
        bare = tmp_path / "no-csp.html"
        bare.write_text(html[:start] + html[end:], "utf-8")
        page = _open(browser, bare)
        page.js(_VISIT_ALL)
        browser.pump(0.5)
        state = page.js(_FOREIGN)
        assert (None, [], []) == (state["pwned"], state["foreign"], state["handlers"])
        assert ([], [], []) == (page.dialogs, page.requests, page.exceptions)


class TestOddValues:
    def test_values_of_unexpected_types_render_as_text(self, browser: Any, tmp_path: Path) -> None:
        """Hand-written records with objects, numbers and lists where text is expected:
        every tab renders, no script error, each value shown as JSON text."""
        from structlog_belog.package.report_page import PageBuilder, page_data, render_page
        from structlog_belog.package.scan import scan_session
        from tests.session_files import (
            belog_record,
            call,
            end,
            rec,
            session_dir,
            stage,
            start,
            write,
        )

        d = session_dir(tmp_path / "logs")
        odd = {"<b>": ["x", 1]}
        write(d / "processing.jsonl", [
            start(0, title=odd, execution_context=[1, 2], blueprint_id=7, host=None),
            stage(1, "s1", "stage_start", parent_stage=odd),
            rec(2, odd, level="error", logger=3, exception=["not", "text"], stage="s1"),
            rec(3, "metric", kind="metric", name="m", value=odd),
            rec(4, "output", kind="output", path=odd, call_ids=[5, "c1"]),
            stage(5, "s1", "stage_end", success="maybe"),
            end(6, success=False, exception=odd),
        ])  # fmt: skip
        write(d / "prompts.jsonl", [
            call(2.5, "c1", model=odd, status=None, latency_ms="slow", usage=[1, 2],
                 attempts=[{"attempt": "one", "status_code": "x"}, 7],
                 request={"messages": [odd, {"role": 5, "content": [odd, "t"]}], "input": odd},
                 response={"output_text": odd, "tool_calls": odd}),
        ])  # fmt: skip
        write(d / "belog.jsonl", [
            belog_record(5.5, "t1", stage="s1", expected_outcome=odd, efficiency_score="high",
                         improvement_suggestions=[odd], errors_encountered=[odd]),
        ])  # fmt: skip
        page = PageBuilder()
        report = scan_session(d, page=page)
        path = tmp_path / "odd.html"
        path.write_bytes(render_page(page_data(report, page)))
        view = _open(browser, path)
        details = view.js(_VISIT_ALL)
        assert 1 == len(details)
        assert [] == view.exceptions
        text = view.js("document.body.textContent")
        assert '{"<b>":["x",1]}' in text
