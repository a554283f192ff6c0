/* The run report's script. Inlined into execution_report.html at build time and
   allowed by the page's Content-Security-Policy through its SHA-256 hash.
   Every value from the run is shown with textContent (or a DOM property such as
   title or dataset), never parsed as HTML, and nothing is ever fetched. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('belog-data').textContent);
  var TEXTS = D.texts || [];
  var ROW_H = 26;

  // -- building blocks ---------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = fmtVal(text);
    return e;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      // Only our own nodes are inserted; any value from the run becomes a text node.
      parent.appendChild(c instanceof Node ? c : document.createTextNode(fmtVal(c)));
    }
    return parent;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function code(text) { return el('code', null, text); }
  function link(text, onclick, cls) {
    var b = el('button', 'link' + (cls ? ' ' + cls : ''), text);
    b.type = 'button';
    b.addEventListener('click', onclick);
    return b;
  }
  function text(i) {  // an entry of the text table: a string or {p, n, h}
    if (i === null || i === undefined) return null;
    var t = TEXTS[i];
    return t === undefined ? null : t;
  }
  function plain(i) { var t = text(i); return t === null ? '' : (typeof t === 'string' ? t : t.p); }
  function block(i, cls) {  // a text shown whole, with a note when it was capped
    var t = text(i);
    var wrap = el('div', cls || null);
    if (t === null) return add(wrap, el('span', 'note', '(none)'));
    add(wrap, el('pre', null, typeof t === 'string' ? t : t.p));
    if (typeof t !== 'string') {
      add(wrap, el('div', 'capped', 'Shown: the first ' + fmtInt(t.p.length) + ' of ' +
        fmtInt(t.n) + ' characters. SHA-256 of the whole text: ' + t.h +
        ' (the full text is in prompts_audit.jsonl).'));
    }
    return wrap;
  }
  function fmtInt(n) { return typeof n === 'number' ? n.toLocaleString('en-US') : '—'; }
  function fmtSec(s) {
    if (typeof s !== 'number') return '—';
    if (s < 1) return (s * 1000).toFixed(0) + ' ms';
    if (s < 120) return s.toFixed(2) + ' s';
    var m = Math.floor(s / 60), h = Math.floor(m / 60);
    return h ? h + ' h ' + (m % 60) + ' min' : m + ' min ' + Math.floor(s % 60) + ' s';
  }
  function fmtMs(ms) { return typeof ms === 'number' ? fmtSec(ms / 1000) : '—'; }
  function fmtUsd(v) {
    if (typeof v !== 'number') return '—';
    return '$' + (v > 0 && v < 0.01 ? v.toFixed(6) : v.toFixed(4));
  }
  function fmtVal(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'string') return v;
    return JSON.stringify(v);
  }
  function table(headers, rows, numeric) {
    var t = el('table');
    var tr = el('tr');
    headers.forEach(function (h, i) { add(tr, el('th', numeric && numeric[i] ? 'num' : null, h)); });
    add(t, add(el('thead'), tr));
    var body = el('tbody');
    rows.forEach(function (cells) {
      var r = el('tr');
      cells.forEach(function (c, i) {
        var td = el('td', numeric && numeric[i] ? 'num' : null);
        if (c instanceof Node) add(td, c); else td.textContent = fmtVal(c);
        add(r, td);
      });
      add(body, r);
    });
    return add(t, body);
  }
  function statusMark(ok) {
    if (ok === true) return el('span', 'ok', '✓ ok');
    if (ok === false) return el('span', 'bad', '✕ failed');
    return el('span', 'warn', '… open');
  }

  // -- navigation ----------------------------------------------------------------
  var tabs = {};
  var rendered = {};
  var renderers = {};
  Array.prototype.forEach.call(document.querySelectorAll('#tabs button'), function (b) {
    tabs[b.dataset.tab] = b;
    b.addEventListener('click', function () { show(b.dataset.tab); });
  });
  function show(name) {
    Object.keys(tabs).forEach(function (k) {
      tabs[k].classList.toggle('active', k === name);
      document.getElementById('tab-' + k).hidden = k !== name;
    });
    if (!rendered[name] && renderers[name]) { rendered[name] = true; renderers[name](); }
    if (name === 'calls') drawRows();
  }

  // -- calls: index and filters --------------------------------------------------
  // Each call comes as an array, in the order of D.call_fields: named here once.
  var FIELDS = D.call_fields || [];
  var CALLS = (D.calls || []).map(function (row) {
    var c = {};
    for (var i = 0; i < FIELDS.length; i++) c[FIELDS[i]] = row[i];
    return c;
  });
  var byId = new Map();
  CALLS.forEach(function (c, i) { byId.set(c.id, i); });
  var OUTPUTS = D.outputs || [];
  var filtered = CALLS.map(function (_, i) { return i; });
  var hay = null;  // lower-cased searchable text per call, built on the first search
  var selected = null;

  function lastUser(c) {
    var msgs = c.msg || [];
    for (var i = msgs.length - 1; i >= 0; i--) if (msgs[i][0] === 'user') return plain(msgs[i][1]);
    if (c['in'] !== undefined && c['in'] !== null) return plain(c['in']);
    return msgs.length ? plain(msgs[msgs.length - 1][1]) : '';
  }
  function haystack(c) {
    var parts = (c.msg || []).map(function (m) { return plain(m[1]); });
    parts.push(plain(c['in']), plain(c.ans), plain(c.tc), c.id);
    if (c.e) parts.push(plain(c.e.message), c.e.type || '');
    return parts.join('\n').toLowerCase();
  }
  function options(select, values, label) {
    add(select, new Option('any ' + label, ''));
    values.forEach(function (v) { add(select, new Option(v === '' ? '(none)' : v, '=' + v)); });
  }
  function distinct(key) {
    var seen = new Set();
    CALLS.forEach(function (c) { seen.add(c[key] === null || c[key] === undefined ? '' : String(c[key])); });
    return Array.from(seen).sort();
  }
  var fStage = document.getElementById('f-stage');
  var fTask = document.getElementById('f-task');
  var fModel = document.getElementById('f-model');
  var fStatus = document.getElementById('f-status');
  var fSearch = document.getElementById('f-search');
  options(fStage, distinct('s'), 'stage');
  options(fTask, distinct('k'), 'task');
  options(fModel, distinct('m'), 'model');
  options(fStatus, distinct('st'), 'status');
  [fStage, fTask, fModel, fStatus].forEach(function (s) { s.addEventListener('change', applyFilters); });
  var searchTimer = null;
  fSearch.addEventListener('input', function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applyFilters, 120);
  });
  function want(select, value) {
    if (!select.value) return true;
    return select.value.slice(1) === (value === null || value === undefined ? '' : String(value));
  }
  function applyFilters() {
    var q = fSearch.value.trim().toLowerCase();
    if (q && hay === null) hay = CALLS.map(haystack);
    filtered = [];
    for (var i = 0; i < CALLS.length; i++) {
      var c = CALLS[i];
      if (!want(fStage, c.s) || !want(fTask, c.k) || !want(fModel, c.m) || !want(fStatus, c.st)) continue;
      if (q && hay[i].indexOf(q) < 0) continue;
      filtered.push(i);
    }
    var body = document.getElementById('calls-body');
    body.style.height = (filtered.length * ROW_H) + 'px';
    document.getElementById('calls-table').scrollTop = 0;
    drawRows();
  }
  function setFilter(select, value) {
    var wanted = '=' + (value === null || value === undefined ? '' : String(value));
    var found = Array.prototype.some.call(select.options, function (o) { return o.value === wanted; });
    select.value = found ? wanted : '';
  }
  function callsWhere(stage, task) {
    setFilter(fStage, stage); fTask.value = ''; fModel.value = ''; fStatus.value = '';
    fSearch.value = '';
    if (task !== undefined) setFilter(fTask, task);
    if (stage === undefined) fStage.value = '';
    show('calls');
    applyFilters();
  }
  function drawRows() {
    var box = document.getElementById('calls-table');
    var body = document.getElementById('calls-body');
    if (box.offsetParent === null) return;  // hidden: drawn when shown
    var first = Math.max(0, Math.floor(box.scrollTop / ROW_H) - 5);
    var last = Math.min(filtered.length, first + Math.ceil(box.clientHeight / ROW_H) + 10);
    clear(body);
    body.style.height = (filtered.length * ROW_H) + 'px';
    for (var r = first; r < last; r++) add(body, callRow(filtered[r], r));
    document.getElementById('call-count').textContent =
      fmtInt(filtered.length) + ' of ' + fmtInt(CALLS.length) + ' calls';
  }
  function callRow(i, r) {
    var c = CALLS[i];
    var row = el('div', 'vt-row' + (selected === i ? ' sel' : ''));
    row.style.top = (r * ROW_H) + 'px';
    row.dataset.call = c.id;
    var st = el('span', c.st === 'ok' ? 'ok' : 'bad', c.st);
    var tokens = c.u ? c.u[2] : null;
    add(row, el('span', 'num', i + 1), el('span', null, c.t ? c.t.slice(11, 23) : '—'),
      el('span', null, c.s || '—'), el('span', null, c.k || '—'), st,
      el('span', null, c.m || '—'), el('span', 'num', fmtMs(c.l)),
      el('span', 'num', fmtInt(tokens)), el('span', null, lastUser(c).slice(0, 200)));
    row.title = c.id;
    row.addEventListener('click', function () { openCall(i); });
    return row;
  }
  document.getElementById('calls-table').addEventListener('scroll', drawRows, { passive: true });
  window.addEventListener('resize', drawRows);
  function callLink(id) {
    var i = byId.get(id);
    if (i === undefined) return code(id);
    var c = CALLS[i];
    var b = link(id, function () { openCall(i); }, 'call-link');
    b.dataset.call = id;
    return add(el('span'), b, el('span', 'note', ' ' + (c.m || '') + ', ' + c.st +
      (c.k ? ', task ' + c.k : '')));
  }

  // -- one call, whole -------------------------------------------------------------
  var detail = document.getElementById('detail');
  document.addEventListener('keydown', function (ev) { if (ev.key === 'Escape') detail.hidden = true; });
  function openCall(i) {
    var c = CALLS[i];
    selected = i;
    clear(detail);
    var close = el('button', 'close', 'Close ✕');
    close.type = 'button';
    close.addEventListener('click', function () { detail.hidden = true; });
    add(detail, close, add(el('h2'), 'LLM call ', code(c.id)));
    detail.dataset.call = c.id;
    var facts = [
      ['Status', add(el('span'), el('span', c.st === 'ok' ? 'ok' : 'bad', c.st),
        c.fr ? ' (finish reason ' + c.fr + ')' : '')],
      ['Model', c.m], ['API', c.a], ['Stage', c.s], ['Task', c.k], ['Time (UTC)', c.t],
      ['Latency', fmtMs(c.l)], ['Time to first token', fmtMs(c.f)], ['Streamed', c.sm ? 'yes' : 'no'],
      ['Cost', fmtUsd(c.c)]
    ];
    if (c.u) {
      facts.push(['Tokens', fmtInt(c.u[0]) + ' in, ' + fmtInt(c.u[1]) + ' out, ' + fmtInt(c.u[2]) +
        ' total, ' + fmtInt(c.u[3]) + ' cached, ' + fmtInt(c.u[4]) + ' reasoning']);
    }
    add(detail, table(['Field', 'Value'], facts));
    if (c.e) {
      add(detail, el('h3', 'bad', 'Error'), table(['Field', 'Value'], [
        ['Type', c.e.type], ['HTTP status', c.e.status_code], ['Request ID', c.e.request_id]
      ]), block(c.e.message));
    }
    if (c.at && c.at.length) {
      add(detail, el('h3', null, 'Attempts'), table(['#', 'HTTP status', 'Duration', 'Request ID', 'Retry after'],
        c.at.map(function (a) {
          var ok = typeof a[1] === 'number' && a[1] < 400;
          return [a[0], el('span', ok ? 'ok' : 'bad', fmtVal(a[1])), fmtMs(a[2]), a[3], a[4]];
        }), [true, false, true, false, false]));
    }
    var msgs = c.msg || [];
    if (msgs.length) {
      add(detail, el('h3', null, 'Messages (' + msgs.length + ')'));
      msgs.forEach(function (m) {
        add(detail, add(el('div', 'msg'), el('div', 'role', m[0]), block(m[1], 'prompt')));
      });
    }
    if (c['in'] !== undefined && c['in'] !== null) add(detail, el('h3', null, 'Input'), block(c['in'], 'prompt'));
    if (c.p !== undefined && c.p !== null) add(detail, el('h3', null, 'Request parameters'), block(c.p));
    add(detail, el('h3', null, 'Answer'), block(c.ans, 'answer'));
    if (c.tc !== undefined && c.tc !== null) add(detail, el('h3', null, 'Tool calls'), block(c.tc));
    var outs = c.o || [];
    add(detail, el('h3', null, 'Outputs it produced (' + outs.length + ')'));
    if (!outs.length) add(detail, el('p', 'note', 'No output file is linked to this call.'));
    var ul = el('ul');
    outs.forEach(function (k) {
      var o = OUTPUTS[k];
      if (!o) return;
      var b = link(o.path, function () { showOutput(k); }, 'out-link');
      b.dataset.output = String(k);
      add(ul, add(el('li'), b));
    });
    add(detail, ul);
    detail.hidden = false;
    detail.scrollTop = 0;
    drawRows();
  }

  // -- header ------------------------------------------------------------------------
  var S = D.session || {};
  var AI = D.ai || {};
  var R = D.records || {};
  document.title = (S.title || S.id || 'belog') + ' — belog run report';
  document.getElementById('title').textContent = S.title || S.id || 'belog run report';
  var statusText = { success: 'Success', failed: 'Failed', not_ended: 'Did not end' }[S.status] || 'Unknown';
  var badge = el('button', 'status ' + (S.status || ''), statusText);
  badge.type = 'button';
  badge.id = 'status';
  badge.title = S.status === 'success' ? 'The run succeeded' : 'Why: open the errors';
  badge.addEventListener('click', function () { show(S.status === 'success' ? 'overview' : 'errors'); });
  function fact(k, v) { return add(el('li'), k + ' ', v instanceof Node ? v : el('b', null, fmtVal(v))); }
  var bp = S.blueprint_id ? S.blueprint_id + (S.blueprint_version ? ' ' + S.blueprint_version : '') : null;
  add(document.getElementById('facts'),
    add(el('li'), badge),
    fact('Session', code(S.id)),
    fact('Duration', fmtSec(S.duration)),
    fact('Records', fmtInt(R.total)),
    fact('LLM calls', fmtInt(AI.total_api_calls)),
    fact('Tokens', fmtInt(AI.total_tokens)),
    fact('Cost', fmtUsd(AI.cost_usd)),
    fact('Blueprint', bp),
    fact('Started (UTC)', S.start));

  // -- overview ----------------------------------------------------------------------
  renderers.overview = function () {
    var box = document.getElementById('tab-overview');
    if (S.status !== 'success') {
      var why = el('div', 'why ' + (S.status || ''));
      add(why, el('h2', null, S.status === 'not_ended' ? 'The run did not end' : 'Why the run failed'));
      if (S.status === 'not_ended') {
        add(why, el('p', null, 'No session_end record was written: the process crashed or was killed. ' +
          'Times and counts cover the records written before that.'));
      }
      if (S.exception !== null && S.exception !== undefined) {
        var exc = plain(S.exception).trim().split('\n');
        add(why, el('p', 'bad', exc[exc.length - 1]));
      }
      var failing = CALLS.filter(function (c) { return c.st === 'error'; }).length;
      var failedTasks = (D.tasks || []).filter(function (t) { return t.success === false; });
      if (failedTasks.length) add(why, el('p', null, 'Failed task(s): ' + failedTasks.map(function (t) { return t.name; }).join(', ')));
      if (failing) add(why, el('p', null, failing + ' LLM call(s) failed.'));
      add(why, link('Show the traceback and the errors', function () { show('errors'); }, 'why-link'));
      add(box, why);
    }
    var cards = el('div', 'cards');
    [['LLM calls', fmtInt(AI.total_api_calls)], ['Failed calls', fmtInt(AI.failed_calls)],
     ['Tokens', fmtInt(AI.total_tokens)], ['Cost', fmtUsd(AI.cost_usd)],
     ['Retries', fmtInt(AI.retries)], ['Records', fmtInt(R.total)],
     ['Dropped records', fmtInt(R.dropped)], ['Outputs', fmtInt(OUTPUTS.length)]].forEach(function (p) {
      add(cards, add(el('div', 'card'), el('div', 'v', p[1]), el('div', 'k', p[0])));
    });
    add(box, cards);
    add(box, el('h2', null, 'Issues detected'), issuesList());
    if (OUTPUTS.length) {
      add(box, el('h2', null, 'Outputs and the calls behind them'));
      var ul = el('ul', 'outputs-brief');
      OUTPUTS.slice(0, 10).forEach(function (o, k) {
        var li = add(el('li'), link(o.path, function () { showOutput(k); }, 'out-link'), ' ← ');
        if (!o.calls.length) add(li, el('span', 'note', 'no LLM call is linked'));
        o.calls.slice(0, 5).forEach(function (id, n) { if (n) add(li, ', '); add(li, callLink(id)); });
        add(ul, li);
      });
      add(box, ul);
      if (OUTPUTS.length > 10) add(box, link('All ' + fmtInt(OUTPUTS.length) + ' outputs', function () { show('outputs'); }));
    }
    add(box, el('h2', null, 'Stages'));
    var stages = D.stages || [];
    if (!stages.length) add(box, el('p', 'note', 'No stages were recorded.'));
    else {
      add(box, table(['Stage', 'Status', 'Duration', 'Records', 'Errors', 'Warnings'], stages.map(function (st) {
        return [link(st.name + (st.parent ? ' (in ' + st.parent + ')' : ''), function () { callsWhere(st.name); }),
          statusMark(st.success), fmtSec(st.duration), fmtInt(st.records), fmtInt(st.errors), fmtInt(st.warnings)];
      }), [false, false, true, true, true, true]));
    }
    add(box, el('h2', null, 'Session'), table(['Field', 'Value'], [
      ['Session ID', code(S.id)], ['Title', S.title], ['Execution context', S.execution_context],
      ['Blueprint', bp], ['Parent session', S.parent ? code(S.parent) : null],
      ['Started (UTC)', S.start], ['Ended (UTC)', S.ended ? S.end : 'did not end'],
      ['Host', S.host], ['Python / belog', (S.python || '—') + ' / ' + (S.belog_version || '—')],
      ['Report made', D.generated_at]
    ]));
    add(box, el('p', 'note', 'Long texts are capped in this page (length and SHA-256 shown); ' +
      'the package\'s prompts_audit.jsonl holds every call whole.'));
  };
  function issuesList() {
    var issues = D.issues || [];
    if (!issues.length) return el('p', 'note', 'No issues detected.');
    var ul = el('ul', 'issues');
    issues.forEach(function (it) {
      var li = add(el('li'), el('span', 'sev-' + it.severity, it.severity), ' ', it.message);
      var ex = it.examples || [];
      if (ex.length) {
        add(li, el('span', 'note', ' — e.g. '));
        ex.slice(0, 10).forEach(function (x, n) {
          if (n) add(li, ', ');
          add(li, byId.has(x) ? link(x, function () { openCall(byId.get(x)); }, 'call-link') : code(x));
        });
      }
      add(ul, li);
    });
    return ul;
  }

  // -- timeline -------------------------------------------------------------------------
  renderers.timeline = function () {
    var box = document.getElementById('tab-timeline');
    var rows = D.timeline || [];
    var end = typeof S.duration === 'number' ? S.duration : 0;
    rows.forEach(function (r) { if (typeof r.x1 === 'number' && r.x1 > end) end = r.x1; });
    if (!(end > 0)) end = 1;
    add(box, el('p', 'note', 'Stages and the tasks inside them on one time axis (0 is the session\'s ' +
      'start). Failed ones are red and marked ✕; hatched ones never ended. Click a bar for its LLM calls.'));
    if (!rows.length) { add(box, el('p', 'note', 'No stages or tasks were recorded.')); return; }
    var tl = el('div', 'tl');
    var axis = el('div', 'tl-axis');
    for (var k = 0; k <= 4; k++) {
      var tick = el('span', 'tick', fmtSec(end * k / 4));
      tick.style.left = (k * 25) + '%';
      add(axis, tick);
    }
    add(tl, axis);
    rows.forEach(function (t) {
      var r = el('div', 'tl-row');
      var l = el('div', 'tl-label');
      l.style.paddingLeft = (6 + Math.min(t.depth, 12) * 14) + 'px';
      if (t.failed) add(l, el('span', 'mark', '✕'));
      add(l, t.name);
      l.title = t.kind + ' ' + t.name;
      var track = el('div', 'tl-track');
      var bar = el('button', 'bar ' + t.kind + (t.failed ? ' fail' : '') + (t.open ? ' open' : ''));
      bar.type = 'button';
      bar.dataset.kind = t.kind;
      bar.dataset.name = t.name;
      if (t.failed) bar.dataset.failed = 'true';
      var x1 = t.open ? end : t.x1;
      var a = Math.max(0, Math.min(1, (t.x0 || 0) / end));
      var b = Math.max(a, Math.min(1, (typeof x1 === 'number' ? x1 : t.x0 || 0) / end));
      // A bar of no length at the very end stays visible: it starts 3 px before the edge.
      bar.style.left = 'min(' + (a * 100) + '%, calc(100% - 3px))';
      bar.style.width = ((b - a) * 100) + '%';
      bar.title = t.kind + ' ' + t.name + ': ' + fmtSec(t.dur) + (t.failed ? ', failed' : '') +
        (t.open ? ', did not end' : '');
      bar.addEventListener('click', function () {
        if (t.kind === 'task') callsWhere(t.stage === null ? undefined : t.stage, t.name);
        else callsWhere(t.name);
      });
      add(track, bar);
      add(tl, add(r, l, track));
    });
    add(box, tl);
  };

  // -- outputs ------------------------------------------------------------------------------
  function showOutput(k) {
    detail.hidden = true;
    show('outputs');
    var row = document.querySelector('[data-output-row="' + String(Number(k)) + '"]');
    Array.prototype.forEach.call(document.querySelectorAll('.hl'), function (n) { n.classList.remove('hl'); });
    if (row) { row.classList.add('hl'); row.scrollIntoView({ block: 'center' }); }
  }
  renderers.outputs = function () {
    var box = document.getElementById('tab-outputs');
    add(box, el('h2', null, 'Outputs and the calls behind them'));
    if (!OUTPUTS.length) add(box, el('p', 'note', 'No outputs were recorded.'));
    else {
      var t = table(['Output', 'Produced by'], []);
      var body = t.querySelector('tbody');
      OUTPUTS.forEach(function (o, k) {
        var tr = el('tr');
        tr.dataset.outputRow = String(k);
        var calls = el('td');
        if (!o.calls.length) add(calls, el('span', 'note', 'no LLM call is linked to this output'));
        o.calls.forEach(function (id) { add(calls, add(el('div'), callLink(id))); });
        add(body, add(tr, add(el('td'), code(o.path)), calls));
      });
      add(box, t);
    }
    var inputs = D.inputs || [];
    add(box, el('h2', null, 'Inputs (' + inputs.length + ')'));
    var ul = el('ul');
    inputs.forEach(function (p) { add(ul, add(el('li'), code(p))); });
    add(box, ul);
    var contents = D.contents || [];
    if (contents.length) {
      add(box, el('h2', null, 'Copied into the package'), table(['Path', 'As', 'Copied to'],
        contents.map(function (c) { return [code(c.path), c.as_name, c.copied_to]; })));
    }
  };

  // -- tasks -------------------------------------------------------------------------------
  renderers.tasks = function () {
    var box = document.getElementById('tab-tasks');
    var tasks = D.tasks || [];
    add(box, el('h2', null, 'BELog tasks (' + fmtInt(tasks.length) + ')'));
    if (!tasks.length) { add(box, el('p', 'note', 'No BELog tasks were recorded.')); return; }
    add(box, table(['Task', 'Stage', 'Status', 'Time', 'Efficiency', 'Expected outcome', 'Errors', 'Suggestions'],
      tasks.map(function (t) {
        var errs = el('div');
        (t.errors || []).forEach(function (e) { add(errs, block(e)); });
        var sugg = el('ul');
        (t.suggestions || []).forEach(function (s) { add(sugg, el('li', null, s)); });
        return [link(t.name, function () { callsWhere(t.stage || undefined, t.name); }), t.stage,
          statusMark(t.success), fmtSec(t.duration), t.score, t.expected, errs, sugg];
      }), [false, false, false, true, true, false, false, false]));
    if (D.limits && D.limits.tasks_total > tasks.length) {
      add(box, el('p', 'note', fmtInt(D.limits.tasks_total - tasks.length) + ' more task(s) are in belog.jsonl.'));
    }
  };

  // -- errors ------------------------------------------------------------------------------
  renderers.errors = function () {
    var box = document.getElementById('tab-errors');
    if (S.exception !== null && S.exception !== undefined) {
      add(box, el('h2', 'bad', 'The run raised'), block(S.exception, 'traceback'));
    } else if (S.status === 'not_ended') {
      add(box, el('h2', 'warn', 'The run did not end'), el('p', null,
        'No session_end record was written: the process crashed or was killed.'));
    }
    var failedCalls = CALLS.filter(function (c) { return c.st === 'error'; });
    add(box, el('h2', null, 'Failed LLM calls (' + fmtInt(failedCalls.length) + ')'));
    if (failedCalls.length) {
      add(box, table(['Call', 'Error'], failedCalls.slice(0, 200).map(function (c) {
        return [callLink(c.id), (c.e ? (c.e.type || '') + ': ' + plain(c.e.message).slice(0, 300) : '')];
      })));
    } else add(box, el('p', 'note', 'None.'));
    var groups = D.errors || [];
    add(box, el('h2', null, 'Error records, grouped'));
    if (!groups.length) add(box, el('p', 'note', 'No errors were logged.'));
    else {
      add(box, table(['Count', 'Logger', 'Event', 'Last line of the traceback', 'First seen (UTC)', 'Stage'],
        groups.map(function (g) { return [fmtInt(g.count), g.logger, g.event, g.exception, g.first_seen, g.stage]; }),
        [true]));
    }
    var recs = D.error_records || [];
    if (recs.length) {
      add(box, el('h2', null, 'Error records with their tracebacks (' + fmtInt(recs.length) + ')'));
      recs.forEach(function (r) {
        var d = el('details', 'error-record');
        add(d, add(el('summary'), el('span', 'sev-error', r.level), ' ', r.t || '', ' ',
          code(r.logger || ''), ' ', r.event, r.stage ? ' (stage ' + r.stage + ')' : ''));
        if (r.exc !== null && r.exc !== undefined) add(d, block(r.exc, 'traceback'));
        else add(d, el('p', 'note', 'No traceback.'));
        add(box, d);
      });
      if (D.limits && D.limits.error_records_total > recs.length) {
        add(box, el('p', 'note', fmtInt(D.limits.error_records_total - recs.length) +
          ' more error record(s) are in processing.jsonl.'));
      }
    }
  };

  // -- metrics -----------------------------------------------------------------------------
  renderers.metrics = function () {
    var box = document.getElementById('tab-metrics');
    var metrics = D.metrics || {};
    var names = Object.keys(metrics);
    add(box, el('h2', null, 'Quality metrics'));
    if (!names.length) add(box, el('p', 'note', 'No quality metrics were recorded.'));
    else add(box, table(['Metric', 'Value'], names.map(function (n) { return [code(n), fmtVal(metrics[n])]; })));
    var models = AI.by_model || {};
    add(box, el('h2', null, 'AI usage by model'));
    var mnames = Object.keys(models);
    if (!mnames.length) add(box, el('p', 'note', 'No LLM calls were made.'));
    else {
      add(box, table(['Model', 'Calls', 'Failed', 'Input tokens', 'Output tokens', 'Cost', 'Mean latency'],
        mnames.map(function (n) {
          var m = models[n];
          return [n, fmtInt(m.calls), fmtInt(m.failed_calls), fmtInt(m.input_tokens), fmtInt(m.output_tokens),
            fmtUsd(m.cost_usd), fmtMs(m.mean_latency_ms)];
        }), [false, true, true, true, true, true, true]));
    }
    var levels = R.by_level || {};
    add(box, el('h2', null, 'Records'), table(['Level', 'Records'], Object.keys(levels).map(function (k) {
      return [k, fmtInt(levels[k])];
    }), [false, true]));
    add(box, el('p', 'note', 'Dropped: ' + fmtInt(R.dropped) + '; unreadable lines: ' + fmtInt(R.corrupt_lines)));
  };

  // -- start -----------------------------------------------------------------------------
  var note = document.getElementById('calls-note');
  if (D.limits && D.limits.calls_total > CALLS.length) {
    note.textContent = fmtInt(D.limits.calls_total - CALLS.length) + ' more call(s) are left out of this ' +
      'page (it keeps the first ' + fmtInt(CALLS.length) + '); prompts_audit.jsonl has them all.';
  } else {
    note.textContent = 'Search looks through the prompts and answers as kept in this page ' +
      '(long texts are capped).';
  }
  // A link may name a tab (#calls) or a call (#call=ID): looked up, never evaluated.
  function route() {
    var h = decodeURIComponent(location.hash.slice(1));
    if (h.indexOf('call=') === 0 && byId.has(h.slice(5))) openCall(byId.get(h.slice(5)));
    else if (Object.prototype.hasOwnProperty.call(tabs, h)) show(h);
  }
  show('overview');
  try { route(); } catch (e) { /* a malformed fragment: stay on the overview */ }
  window.addEventListener('hashchange', function () { try { route(); } catch (e) { /* ignored */ } });
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = 'true';
})();
