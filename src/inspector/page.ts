/**
 * The inspector's page, `GET /debug/leases`: one self-contained HTML document (inline style and
 * script under a per-response nonce, no external asset, works offline) that polls
 * `leases.json` next to it and renders every pool: its counts, its active leases oldest first
 * (ages, statement times and deadlines ticking between polls), its waiters and its recent
 * reports. Everything from the snapshot is inserted as text (`textContent`), never as markup.
 */

/** The page's HTML for one response. `nonce` must be fresh per response (it is the CSP nonce). */
export function inspectorPage(nonce: string, pollIntervalMs: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>leasepool · live leases</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body data-poll-ms="${String(Math.max(100, Math.floor(pollIntervalMs)))}">
<header><h1>leasepool <span class="dim">· live leases</span></h1><span id="status" class="status">connecting…</span>
<label class="dim"><input type="checkbox" id="pause"> pause</label></header>
<main id="pools"></main>
<footer class="dim">Ages tick in the page between polls of <code>leases.json</code>. Statements show their SQL text as written, never parameter values.</footer>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

const STYLE = `
:root { color-scheme: light dark; --bg: #fff; --fg: #1d232a; --dim: #6a737d; --line: #d8dee4; --warn: #b35900; --bad: #c62828; --ok: #2e7d32; --chip: #f1f3f5; }
@media (prefers-color-scheme: dark) { :root { --bg: #14171a; --fg: #e6e8ea; --dim: #9aa4ad; --line: #2f363d; --warn: #ffb74d; --bad: #ef5350; --ok: #81c784; --chip: #22272c; } }
body { margin: 0; padding: 0 1.2rem 2rem; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, sans-serif; }
header { display: flex; gap: 1rem; align-items: baseline; border-bottom: 1px solid var(--line); padding: .6rem 0; }
h1 { font-size: 1.2rem; margin: 0; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; } h3 { font-size: .95rem; margin: 1rem 0 .3rem; }
.dim { color: var(--dim); font-weight: normal; }
.status { font-size: .85rem; padding: .1rem .5rem; border-radius: 1rem; background: var(--chip); }
.status.live { color: var(--ok); } .status.error { color: var(--bad); }
.chips { display: flex; flex-wrap: wrap; gap: .4rem; } .chip { background: var(--chip); border-radius: .3rem; padding: .15rem .5rem; }
.chip b { font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; margin-top: .3rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .8rem; color: var(--dim); font-weight: 600; }
td.num, .tick { font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { margin: .3rem 0 0; white-space: pre-wrap; word-break: break-all; }
.sql code { white-space: pre-wrap; word-break: break-word; }
.state-running { color: var(--warn); } .state-failed_transaction { color: var(--bad); } .state-in_transaction { color: var(--ok); }
.leaked { color: #fff; background: var(--bad); border-radius: .3rem; padding: 0 .35rem; font-size: .8rem; }
.empty { color: var(--dim); font-style: italic; }
button.reclaim { color: var(--bad); border: 1px solid var(--bad); background: transparent; border-radius: .3rem; cursor: pointer; }
footer { margin-top: 2rem; font-size: .8rem; }
`;

// Plain ES2017 in a string: no template literals inside, so nothing here is interpolated by TypeScript.
const SCRIPT = `
(function () {
  'use strict';
  var pollMs = Number(document.body.getAttribute('data-poll-ms')) || 1000;
  var params = new URLSearchParams(location.search);
  var token = params.get('token') || sessionStorage.getItem('leasepool-inspector-token') || '';
  if (params.has('token')) {
    sessionStorage.setItem('leasepool-inspector-token', token);
    params.delete('token');
    var rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  }
  var headers = token ? { authorization: 'Bearer ' + token } : {};
  var statusEl = document.getElementById('status');
  var poolsEl = document.getElementById('pools');
  var pauseEl = document.getElementById('pause');
  var openStacks = {};
  var fetchedAt = performance.now();
  var timer;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtMs(ms) {
    if (ms < 1000) return Math.max(0, Math.round(ms)) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    var s = Math.floor(ms / 1000);
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  // A cell whose value ticks: up from a duration (age) or down to zero (deadline).
  function tick(ms, down) {
    var e = el('span', 'tick');
    e.setAttribute('data-base', String(ms));
    if (down) e.setAttribute('data-down', '1');
    e.textContent = fmtMs(ms);
    return e;
  }
  function ticker() {
    var elapsed = performance.now() - fetchedAt;
    var all = document.querySelectorAll('.tick');
    for (var i = 0; i < all.length; i++) {
      var base = Number(all[i].getAttribute('data-base'));
      all[i].textContent = fmtMs(all[i].hasAttribute('data-down') ? Math.max(0, base - elapsed) : base + elapsed);
    }
  }
  function stackCell(key, stack) {
    var td = el('td', 'stack');
    if (!stack) { td.appendChild(el('span', 'dim', 'not recorded')); return td; }
    var d = el('details');
    d.open = !!openStacks[key];
    d.addEventListener('toggle', function () { if (d.open) openStacks[key] = true; else delete openStacks[key]; });
    d.appendChild(el('summary', null, (stack.split('\\n')[0] || '').trim().replace(/^at /, '') || 'stack'));
    d.appendChild(el('pre', null, stack));
    td.appendChild(d);
    return td;
  }
  function table(headings) {
    var t = el('table');
    var tr = el('tr');
    headings.forEach(function (h) { tr.appendChild(el('th', null, h)); });
    var thead = el('thead'); thead.appendChild(tr); t.appendChild(thead);
    var tb = el('tbody'); t.appendChild(tb);
    return { table: t, body: tb };
  }
  function reclaim(pool, id, button) {
    if (!confirm('Reclaim lease #' + id + ' of pool "' + pool + '"? Its statement is cancelled, its transaction rolled back, its connection destroyed.')) return;
    button.disabled = true;
    fetch('leases/' + encodeURIComponent(pool) + '/' + id + '/reclaim', { method: 'POST', headers: headers })
      .then(function (r) { button.textContent = r.ok ? 'reclaimed' : 'failed (' + r.status + ')'; poll(); })
      .catch(function () { button.textContent = 'failed'; button.disabled = false; });
  }
  function renderPool(p, reclaimEnabled) {
    var sec = el('section', 'pool');
    sec.setAttribute('data-pool', p.name);
    var h = el('h2', null, p.name + ' ');
    h.appendChild(el('span', 'dim', p.driver + ' · ' + p.target + (p.stats.closed ? ' · closed' : '')));
    sec.appendChild(h);
    var chips = el('div', 'chips');
    ['size', 'idle', 'active', 'pending', 'max'].forEach(function (k) {
      var c = el('span', 'chip stat-' + k, k + ' ');
      c.appendChild(el('b', null, p.stats[k]));
      chips.appendChild(c);
    });
    sec.appendChild(chips);

    sec.appendChild(el('h3', null, 'Active leases (' + p.leases.length + ', oldest first)'));
    if (p.leases.length === 0) sec.appendChild(el('p', 'empty leases-empty', 'no active lease'));
    else {
      var heads = ['id', 'age', 'state', 'tx', 'savepoints', 'statement', 'backend', 'deadline left', 'leaked', 'acquired at'];
      if (reclaimEnabled) heads.push('');
      var lt = table(heads);
      lt.table.className = 'leases';
      p.leases.forEach(function (l) {
        var tr = el('tr', 'lease');
        tr.setAttribute('data-lease-id', String(l.id));
        tr.appendChild(el('td', 'num id', '#' + l.id));
        var age = el('td', 'num age'); age.appendChild(tick(l.ageMs, false)); tr.appendChild(age);
        tr.appendChild(el('td', 'state state-' + l.state, l.state.replace('_', ' ')));
        tr.appendChild(el('td', 'num tx', l.txDepth > 0 ? (l.transaction === 'failed' ? 'failed' : 'open') : (l.transaction === 'none' ? '–' : l.transaction)));
        tr.appendChild(el('td', 'num savepoints', l.savepointDepth));
        var sql = el('td', 'sql');
        if (l.statement) {
          sql.appendChild(el('code', 'sql-text', l.statement.sql));
          var running = el('div', 'dim running', 'running ');
          running.appendChild(tick(l.statement.runningMs, false));
          sql.appendChild(running);
        } else sql.appendChild(el('span', 'dim', l.inflight > 0 ? 'running (text not recorded)' : '–'));
        tr.appendChild(sql);
        tr.appendChild(el('td', 'num backend', l.backendId === null ? '–' : l.backendId));
        var dl = el('td', 'num deadline');
        if (l.deadlineLeftMs === null) dl.textContent = '–'; else dl.appendChild(tick(l.deadlineLeftMs, true));
        tr.appendChild(dl);
        var lk = el('td', 'leak');
        if (l.leaked) lk.appendChild(el('span', 'leaked', 'leaked')); else lk.textContent = 'no';
        tr.appendChild(lk);
        tr.appendChild(stackCell(p.name + '#' + l.id, l.stack));
        if (reclaimEnabled) {
          var td = el('td');
          var b = el('button', 'reclaim', 'reclaim');
          b.addEventListener('click', function () { reclaim(p.name, l.id, b); });
          td.appendChild(b);
          tr.appendChild(td);
        }
        lt.body.appendChild(tr);
      });
      sec.appendChild(lt.table);
    }

    sec.appendChild(el('h3', null, 'Waiting for a connection (' + p.waiters.length + ')'));
    if (p.waiters.length === 0) sec.appendChild(el('p', 'empty', 'nobody waits'));
    else {
      var wl = el('ol', 'waiters');
      p.waiters.forEach(function (w) { var li = el('li', 'waiter', 'waiting '); li.appendChild(tick(w.waitingMs, false)); wl.appendChild(li); });
      sec.appendChild(wl);
    }

    sec.appendChild(el('h3', null, 'Recent leak reports and reclaims (' + p.recent.length + ', newest first)'));
    if (p.recent.length === 0) sec.appendChild(el('p', 'empty', p.statementTracking ? 'none since the inspector was attached' : 'not recorded (no inspector attached)'));
    else {
      var rt = table(['at', 'what', 'lease', 'age', 'detail', 'acquired at']);
      rt.table.className = 'recent';
      p.recent.forEach(function (r, i) {
        var tr = el('tr', 'report report-' + r.kind);
        tr.appendChild(el('td', 'num', new Date(r.at).toLocaleTimeString()));
        tr.appendChild(el('td', null, r.kind === 'reclaim' ? 'reclaimed (' + r.recovery + ')' : r.kind === 'leak' ? 'leak reported' : 'leaked lease returned'));
        tr.appendChild(el('td', 'num', '#' + r.leaseId));
        tr.appendChild(el('td', 'num', fmtMs(r.ageMs)));
        tr.appendChild(el('td', null, r.reason || (r.inTransaction ? 'in transaction' : '')));
        tr.appendChild(stackCell('report:' + p.name + ':' + r.at + ':' + r.leaseId + ':' + i, r.stack));
        rt.body.appendChild(tr);
      });
      sec.appendChild(rt.table);
    }
    return sec;
  }
  function render(snap) {
    var frag = document.createDocumentFragment();
    snap.pools.forEach(function (p) { frag.appendChild(renderPool(p, snap.reclaimEnabled)); });
    if (snap.pools.length === 0) frag.appendChild(el('p', 'empty', 'no pool'));
    poolsEl.replaceChildren(frag);
  }
  function poll() {
    clearTimeout(timer);
    fetch('leases.json', { headers: headers, cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (snap) {
        fetchedAt = performance.now();
        render(snap);
        statusEl.className = 'status live';
        statusEl.textContent = 'live · ' + new Date(snap.generatedAt).toLocaleTimeString();
      })
      .catch(function (err) { statusEl.className = 'status error'; statusEl.textContent = 'not updating: ' + err.message; })
      .then(function () { if (!pauseEl.checked) timer = setTimeout(poll, pollMs); });
  }
  pauseEl.addEventListener('change', function () { if (!pauseEl.checked) poll(); });
  setInterval(ticker, 100);
  poll();
})();
`;
