/**
 * The stats page itself: one self-contained HTML document (inline CSS and JavaScript, no build
 * step, no external asset) that polls its own URL with `?format=json` and redraws in place.
 *
 * The idea is HAProxy's stats page — a table per pool, a row per server, colour by state — made
 * live the way Envoy's admin and most modern dashboards are: a small script fetches JSON every
 * `refreshMs` instead of a `<meta http-equiv=refresh>` reload, so scrolling and selection survive and
 * the transitions list can grow without flicker.
 *
 * Security: stats pages render names that come from configuration and discovery, so the script
 * builds every node with `createElement` + `textContent` and never parses markup (no `innerHTML`);
 * the few server-side strings (the title) are HTML-escaped. The Content-Security-Policy allows only
 * this exact script and stylesheet (by SHA-256 hash, computed once at load), fetches to the page's
 * own origin, and enforces Trusted Types, so even a future markup sink would be refused by the
 * browser. All URLs are relative to `location`, so the page works wherever it is mounted
 * (`/fulcrum`, `/admin/stats/`, behind a path-rewriting proxy).
 *
 * Admin controls (only when the body carries `data-admin-path`; one script either way, so one hash):
 * a password field whose value goes to `sessionStorage` — never into the page, a cookie or a URL —
 * and per backend drain / maintenance / ready buttons and a weight input that call the admin API
 * with `Authorization: Bearer`. The table is redrawn on every poll, so a weight being typed is kept
 * (value and focus) across redraws, and a redraw waits while a pointer is down on the table so a
 * click is never lost to a row replaced between press and release. A 401 forgets the stored token.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { color-scheme: light dark; --bg: #f6f8fa; --card: #ffffff; --fg: #1f2328; --muted: #656d76; --line: #d0d7de;
  --zebra: #f6f8fa; --up: #1a7f37; --up-bg: #dafbe1; --down: #cf222e; --down-bg: #ffebe9; --drain: #9a6700;
  --drain-bg: #fff8c5; --maint: #57606a; --maint-bg: #eaeef2; --eject: #8250df; --eject-bg: #fbefff; --accent: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --card: #161b22; --fg: #e6edf3; --muted: #8d96a0; --line: #30363d; --zebra: #1c2128;
    --up: #3fb950; --up-bg: #12261e; --down: #f85149; --down-bg: #2d1214; --drain: #d29922; --drain-bg: #2b2111;
    --maint: #8d96a0; --maint-bg: #21262d; --eject: #a371f7; --eject-bg: #231a35; --accent: #4493f8; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: baseline; justify-content: space-between; gap: 16px; padding: 16px 24px;
  background: var(--card); border-bottom: 1px solid var(--line); }
h1 { margin: 0; font-size: 20px; font-weight: 600; }
#status { color: var(--muted); font-size: 13px; white-space: nowrap; }
#status::before { content: ""; display: inline-block; width: 8px; height: 8px; margin-right: 6px; border-radius: 50%; background: var(--muted); }
#status.live::before { background: var(--up); }
#status.stale { color: var(--down); }
#status.stale::before { background: var(--down); }
main, #pools { display: grid; gap: 16px; }
main { padding: 16px 24px 32px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.pool-head { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; padding: 12px 16px; border-bottom: 1px solid var(--line); }
h2 { margin: 0; font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }
.tag { font-size: 12px; color: var(--muted); border: 1px solid var(--line); border-radius: 999px; padding: 1px 8px; }
.tag.panic { color: var(--down); border-color: var(--down); background: var(--down-bg); font-weight: 600; }
.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; }
th, td { padding: 7px 12px; text-align: left; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: 0.03em; white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--zebra); }
tbody tr:last-child td { border-bottom: 0; }
tr.row-down td:first-child { box-shadow: inset 3px 0 var(--down); }
tr.row-draining td:first-child { box-shadow: inset 3px 0 var(--drain); }
tr.row-maintenance td:first-child { box-shadow: inset 3px 0 var(--maint); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.backend .id { font-weight: 600; overflow-wrap: anywhere; }
td.backend .addr { color: var(--muted); font-size: 12px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
td.backend { min-width: 180px; }
td.backend .addr .host { overflow-wrap: anywhere; }
td.backend .addr .port { white-space: nowrap; }
table.backends { font-size: 13px; }
table.backends th, table.backends td { padding: 6px 8px; }
th.group { text-align: center; border-left: 1px solid var(--line); text-transform: none; letter-spacing: 0; font-size: 12px; color: var(--fg); }
tr.groups th:first-child { border-left: 0; }
tfoot tr.total td { border-top: 2px solid var(--line); border-bottom: 0; font-weight: 600; background: var(--zebra); }
td.last-check { white-space: nowrap; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px; padding: 12px 16px; border-bottom: 1px solid var(--line); }
figure.chart { margin: 0; min-width: 0; }
.chart-head { display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: baseline; font-size: 12px; margin-bottom: 4px; }
.chart-title { font-weight: 600; margin-right: auto; }
.legend { font-variant-numeric: tabular-nums; white-space: nowrap; }
.legend::before { content: ""; display: inline-block; width: 10px; height: 2px; margin-right: 4px; vertical-align: middle; background: currentColor; }
.chart-svg { display: block; width: 100%; height: 64px; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; }
.chart-svg .grid { stroke: var(--line); stroke-dasharray: 2 3; vector-effect: non-scaling-stroke; }
.chart-svg .axis { stroke: var(--line); vector-effect: non-scaling-stroke; }
.chart-svg .line { fill: none; stroke-width: 1.5; vector-effect: non-scaling-stroke; stroke-linejoin: round; }
.chart-scale { color: var(--muted); font-size: 11px; margin-top: 2px; }
.line-total, .legend.line-total, .line-p50, .legend.line-p50 { color: var(--accent); stroke: var(--accent); }
.line-error, .legend.line-error { color: var(--down); stroke: var(--down); }
.line-p99, .legend.line-p99 { color: var(--drain); stroke: var(--drain); }
.line-b0 { color: #0969da; stroke: #0969da; } .line-b1 { color: #bf3989; stroke: #bf3989; } .line-b2 { color: #1a7f37; stroke: #1a7f37; }
.line-b3 { color: #9a6700; stroke: #9a6700; } .line-b4 { color: #8250df; stroke: #8250df; } .line-b5 { color: #cf222e; stroke: #cf222e; }
.pill-added { color: var(--accent); background: var(--bg); border: 1px solid var(--accent); }
.badge { margin-left: 6px; font-size: 11px; color: var(--muted); border: 1px solid var(--line); border-radius: 4px; padding: 0 5px; }
.pill { display: inline-block; min-width: 86px; text-align: center; font-size: 12px; font-weight: 600; border-radius: 999px; padding: 2px 10px; }
.state-up { color: var(--up); background: var(--up-bg); }
.state-down { color: var(--down); background: var(--down-bg); }
.state-draining { color: var(--drain); background: var(--drain-bg); }
.state-maintenance { color: var(--maint); background: var(--maint-bg); }
.state-ejected { color: var(--eject); background: var(--eject-bg); }
.muted { color: var(--muted); }
.bad { color: var(--down); font-weight: 600; }
.health-meter { display: inline-flex; align-items: center; gap: 8px; }
.bar { width: 56px; height: 6px; border-radius: 3px; background: var(--line); overflow: hidden; }
.fill { height: 100%; background: var(--up); }
.fill.low { background: var(--down); }
.empty { color: var(--muted); text-align: center; padding: 16px; }
[hidden] { display: none !important; }
.events td { font-size: 13px; }
.events .worker-col { display: none; }
body.multi-worker .events .worker-col { display: table-cell; }
.events td.time { color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
noscript { display: block; padding: 16px 24px; color: var(--down); }
.admin-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; padding: 10px 16px; background: var(--card);
  border: 1px solid var(--line); border-radius: 8px; }
.admin-bar label { font-weight: 600; }
.admin-bar input, td.actions input { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 3px 8px; }
.admin-bar input { width: 260px; }
button { font: inherit; font-size: 12px; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 2px 8px; cursor: pointer; }
button:hover { border-color: var(--accent); }
button:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
.token-state { color: var(--muted); font-size: 13px; }
.admin-message { font-size: 13px; }
.admin-message.ok { color: var(--up); }
.admin-message.error { color: var(--down); font-weight: 600; }
.admin-message.busy { color: var(--muted); }
td.actions { white-space: nowrap; padding-left: 8px; padding-right: 8px; }
td.actions button { margin-right: 3px; padding: 2px 6px; }
body[data-admin-path] th, body[data-admin-path] td { padding-left: 8px; padding-right: 8px; }
body[data-admin-path] td.backend { min-width: 150px; }
td.actions .act-drain { color: var(--drain); }
td.actions .act-maintenance { color: var(--maint); }
td.actions .act-ready { color: var(--up); }
td.actions input.weight-input { width: 52px; margin-left: 4px; margin-right: 3px; padding: 2px 6px; font-size: 12px; }
`;

const SCRIPT = `
(function () {
  'use strict';
  var refreshMs = Number(document.body.getAttribute('data-refresh-ms')) || 1000;
  var poolsEl = document.getElementById('pools');
  var eventsEl = document.getElementById('events-body');
  var protocolEl = document.getElementById('protocol-body');
  var protocolSection = document.getElementById('protocol-section');
  var statusEl = document.getElementById('status');
  var timer = 0;
  var lastUpdate = 0;
  var bounds = [];
  var adminPath = document.body.hasAttribute('data-admin-path') ? String(document.body.getAttribute('data-admin-path')) : null;
  // [label, class, title, group]: HAProxy's stats columns, grouped as its page groups them.
  var COLUMNS = [['Name', 'backend', '', 'Backend'],
    ['Cur', 'num queue-cur', 'requests waiting for a backend slot now (the pool queues, backends do not)', 'Queue'], ['Max', 'num queue-max', 'most requests waiting at once', 'Queue'],
    ['Cur', 'num rate-cur', 'per second, over the last second (backends: attempts as they end; total: requests as they arrive)', 'Session rate'], ['Max', 'num rate-max', 'highest rate seen', 'Session rate'],
    ['Cur', 'num inflight', 'requests in flight now', 'Sessions'], ['Max', 'num sessions-max', 'most requests in flight at once', 'Sessions'], ['Limit', 'num sessions-limit', 'maxConnections', 'Sessions'], ['Total', 'num requests', 'attempts ended (total: requests ended)', 'Sessions'], ['Conns', 'num connections', 'connections to the backend open now', 'Sessions'],
    ['In', 'num bytes-in', 'request body bytes', 'Bytes'], ['Out', 'num bytes-out', 'response body bytes', 'Bytes'],
    ['Req', 'num denied', 'refused by the admission check (rate limits)', 'Denied'],
    ['Req', 'num err-req', 'malformed requests (400)', 'Errors'], ['Conn', 'num err-conn', 'attempts that could not connect and were not tried again (HAProxy econ)', 'Errors'], ['Resp', 'num err-resp', 'responses that failed (reset, timeout, cut short) and were not tried again (HAProxy eresp)', 'Errors'], ['Failed', 'num failures', 'attempts counted as failures by passive health', 'Errors'], ['Fail %', 'num failure-rate', '', 'Errors'],
    ['Retr', 'num retries', 'failed attempts tried again on the same backend', 'Warnings'], ['Redis', 'num redispatches', 'failed attempts tried again on another backend', 'Warnings'],
    ['2xx', 'num resp-2xx', '', 'Responses'], ['3xx', 'num resp-3xx', '', 'Responses'], ['4xx', 'num resp-4xx', '', 'Responses'], ['5xx', 'num resp-5xx', '', 'Responses'],
    ['State', 'state', '', 'Server'], ['Weight', 'num weight', 'configured weight', 'Server'], ['Effective', 'num effective', 'weight new traffic sees: slow start and agent applied; 0 unless up and not ejected', 'Server'],
    ['Latency EWMA', 'num latency', 'peak-sensitive moving average of the time to the response head, decaying over 10 s (not a percentile: the charts show p50 and p99)', 'Server'],
    ['Last check', 'last-check', 'result and duration of the last active health check', 'Server'], ['Last change', 'num last-change', 'time since the state last changed (or since counting began)', 'Server'], ['Downtime', 'num downtime', 'total time down', 'Server'],
    ['Ejected', 'ejected', 'outlier detection', 'Server'], ['Health', 'num health', 'active-check counter (rise/fall)', 'Server']];
  if (adminPath !== null) COLUMNS = COLUMNS.concat([['Actions', 'actions', '', 'Admin']]);
  var TOKEN_KEY = 'fulcrum.adminToken';
  var ACTIONS = ['drain', 'maintenance', 'ready'];
  var drafts = Object.create(null);
  var weightInputs = Object.create(null);
  var previousInputs = Object.create(null);
  var messageEl = null;
  var tokenStateEl = null;
  var pointerDown = false;
  var pending = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function cell(row, text, className) {
    var td = el('td', className, text);
    row.appendChild(td);
    return td;
  }
  function word(value) { return /^[a-z]{1,20}$/.test(String(value)) ? String(value) : 'unknown'; }
  function num(n) { return typeof n === 'number' && isFinite(n) ? n : 0; }
  function count(n) { return num(n).toLocaleString('en-US'); }
  function decimal(n) { return String(Math.round(num(n) * 100) / 100); }
  function millis(ms) {
    ms = num(ms);
    if (ms <= 0) return '\\u2014';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 10000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(1) + ' s';
  }
  function duration(ms) {
    var s = Math.max(0, Math.ceil(num(ms) / 1000));
    if (s < 120) return s + ' s';
    var m = Math.floor(s / 60);
    return m < 120 ? m + ' min' : Math.floor(m / 60) + ' h';
  }
  function clock(at) {
    var d = new Date(num(at));
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  // ── Admin controls ──────────────────────────────────────────────────────────────────────────
  function storedToken() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function storeToken(value) {
    try {
      if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
      else window.sessionStorage.removeItem(TOKEN_KEY);
      return true;
    } catch (e) { return false; }
  }
  function say(kind, text) {
    messageEl.className = 'admin-message ' + kind;
    messageEl.textContent = text;
  }
  function showTokenState() {
    tokenStateEl.textContent = storedToken() ? 'token set for this tab' : 'no token set';
  }

  function adminBar() {
    var bar = el('div', 'admin-bar');
    bar.id = 'admin';
    var label = el('label', null, 'Admin token');
    label.htmlFor = 'admin-token';
    var input = el('input');
    input.type = 'password';
    input.id = 'admin-token';
    input.autocomplete = 'off';
    input.spellcheck = false;
    input.placeholder = 'bearer token of the admin API';
    var use = el('button', 'use-token', 'Use token');
    use.type = 'button';
    var forget = el('button', 'forget-token', 'Forget');
    forget.type = 'button';
    tokenStateEl = el('span', 'token-state');
    messageEl = el('span', 'admin-message');
    messageEl.setAttribute('role', 'status');
    messageEl.setAttribute('aria-live', 'polite');
    function save() {
      var value = input.value.trim();
      if (!value) return say('error', 'type the admin token first');
      if (!storeToken(value)) return say('error', 'this browser refuses sessionStorage: the token cannot be kept');
      input.value = '';
      showTokenState();
      say('ok', 'token kept for this tab');
    }
    use.addEventListener('click', save);
    input.addEventListener('keydown', function (event) { if (event.key === 'Enter') save(); });
    forget.addEventListener('click', function () { storeToken(''); showTokenState(); say('ok', 'token forgotten'); });
    [label, input, use, forget, tokenStateEl, messageEl].forEach(function (node) { bar.appendChild(node); });
    showTokenState();
    return bar;
  }

  function callAdmin(method, pool, id, action, body) {
    var token = storedToken();
    if (!token) {
      say('error', 'enter the admin token first: ' + action + ' of ' + id + ' was not sent');
      return Promise.resolve(false);
    }
    var headers = { authorization: 'Bearer ' + token, accept: 'application/json' };
    var init = { method: method, cache: 'no-store', credentials: 'omit', headers: headers };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    var url = adminPath + '/pools/' + encodeURIComponent(pool) + '/backends/' + encodeURIComponent(id) + '/' + action;
    say('busy', action + ' ' + id + '\\u2026');
    return fetch(url, init)
      .then(function (response) {
        return response.json().then(function (data) { return data; }, function () { return {}; }).then(function (data) {
          if (response.status === 401) {
            storeToken('');
            showTokenState();
            throw new Error('the admin API refused the token (401); enter it again');
          }
          if (!response.ok) throw new Error(data && typeof data.error === 'string' ? data.error : 'HTTP ' + response.status);
          return data || {};
        });
      })
      .then(function (data) {
        say('ok', id + (action === 'weight' ? ': weight ' + decimal(data.weight) : ': ' + word(data.state)));
        clearTimeout(timer);
        poll();
        return true;
      }, function (error) {
        say('error', action + ' of ' + id + ' failed: ' + (error && error.message ? error.message : 'network error'));
        return false;
      });
  }

  function setWeight(pool, id, key, input) {
    var text = input.value.trim();
    var weight = Number(text);
    if (text === '' || !isFinite(weight) || weight < 0) return say('error', 'weight of ' + id + ': type a number \\u2265 0');
    callAdmin('PUT', pool, id, 'weight', { weight: weight }).then(function (ok) {
      if (!ok) return;
      delete drafts[key];
      input.value = '';
    });
  }

  function actionsCell(tr, pool, b) {
    var id = String(b.id);
    var td = cell(tr, null, 'actions');
    ACTIONS.forEach(function (action) {
      var button = el('button', 'act act-' + action, action);
      button.type = 'button';
      button.setAttribute('data-action', action);
      button.addEventListener('click', function () { callAdmin('POST', pool, id, action); });
      td.appendChild(button);
    });
    var key = pool + '\\u0000' + id;
    // The same input element across redraws: what is typed into it while a redraw runs is never
    // typed into an element the redraw has just replaced.
    var input = previousInputs[key];
    if (!input) {
      input = el('input', 'weight-input');
      input.type = 'text';
      input.inputMode = 'decimal';
      input.autocomplete = 'off';
      input.setAttribute('aria-label', 'new weight of ' + id);
      if (key in drafts) input.value = drafts[key];
      input.addEventListener('input', function () { drafts[key] = input.value; });
      input.addEventListener('keydown', function (event) { if (event.key === 'Enter') setWeight(pool, id, key, input); });
    }
    input.placeholder = decimal(b.weight);
    weightInputs[key] = input;
    var set = el('button', 'act act-weight', 'set');
    set.type = 'button';
    set.title = 'set the weight of ' + id;
    set.setAttribute('data-action', 'weight');
    set.addEventListener('click', function () { setWeight(pool, id, key, input); });
    td.appendChild(input);
    td.appendChild(set);
  }

  // ── Tables ─────────────────────────────────────────────────────────────────────────────────
  function dash() { return '\\u2014'; }
  function bytes(n) {
    n = num(n);
    if (n < 1024) return count(n) + ' B';
    var units = ['KB', 'MB', 'GB', 'TB', 'PB'];
    var i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return (n < 10 ? n.toFixed(1) : Math.round(n)) + ' ' + units[i];
  }
  // A draining, down, in-maintenance or ejected backend takes no new unsticky traffic: its
  // effective weight is 0, whatever slow start computed.
  function servingWeight(b) { return word(b.state) === 'up' && !b.ejected ? num(b.effectiveWeight) : 0; }
  function numCell(tr, text, cls, bad) { return cell(tr, text, 'num ' + cls + (bad ? ' bad' : '')); }
  function blank(tr, cls) { return cell(tr, dash(), 'num muted ' + cls); }
  function checkText(c) {
    if (!c || typeof c !== 'object') return dash();
    return (c.ok ? 'passed' : 'failed') + ' \\u00b7 ' + millis(Math.max(0.1, num(c.durationMs)));
  }

  function addressNode(address) {
    // The port and the character before it never part: a long host breaks anywhere, ':8080' never.
    var text = String(address);
    var div = el('div', 'addr');
    div.title = text;
    var m = /^(.*?)(.:\\d{1,5}\\/?)$/.exec(text);
    if (m) {
      div.appendChild(el('span', 'host', m[1]));
      div.appendChild(el('span', 'port', m[2]));
    } else {
      div.appendChild(el('span', 'host', text));
    }
    return div;
  }

  function backendRow(b, at, pool, t) {
    var state = word(b.state);
    t = t && typeof t === 'object' ? t : {};
    var tr = el('tr', 'row-' + state);
    tr.setAttribute('data-backend', String(b.id));
    var id = cell(tr, null, 'backend');
    id.appendChild(el('span', 'id', b.id));
    if (b.backup) id.appendChild(el('span', 'badge', 'backup'));
    if (b.zone) id.appendChild(el('span', 'badge', b.zone));
    if (b.removing) id.appendChild(el('span', 'badge', 'removing'));
    // Slow start ramps a backend that serves; a down or drained one is not "starting".
    if (b.slowStart && state === 'up') {
      var ramp = el('span', 'badge badge-slow-start', 'slow start');
      ramp.title = 'effective weight ramping up to ' + decimal(b.weight) + ' after the backend (re)joined';
      id.appendChild(ramp);
    }
    id.appendChild(addressNode(b.address));
    // Queue: requests wait per pool, not per backend (see the total row).
    blank(tr, 'queue-cur');
    blank(tr, 'queue-max');
    numCell(tr, count(t.rate), 'rate-cur');
    numCell(tr, count(t.rateMax), 'rate-max');
    numCell(tr, count(b.inflight), 'inflight');
    numCell(tr, count(Math.max(num(t.sessionsMax), num(b.inflight))), 'sessions-max');
    numCell(tr, b.maxConnections ? count(b.maxConnections) : dash(), 'sessions-limit');
    numCell(tr, count(b.requests), 'requests');
    numCell(tr, count(t.connections), 'connections');
    numCell(tr, bytes(t.bytesIn), 'bytes-in');
    numCell(tr, bytes(t.bytesOut), 'bytes-out');
    blank(tr, 'denied');
    blank(tr, 'err-req');
    numCell(tr, count(t.connectionErrors), 'err-conn', num(t.connectionErrors) > 0);
    numCell(tr, count(t.responseErrors), 'err-resp', num(t.responseErrors) > 0);
    numCell(tr, count(b.failures), 'failures', num(b.failures) > 0);
    var requests = num(b.requests);
    var rate = requests > 0 ? (100 * num(b.failures)) / requests : 0;
    numCell(tr, requests > 0 ? rate.toFixed(1) + ' %' : dash(), 'failure-rate', rate >= 5);
    numCell(tr, count(t.retries), 'retries');
    numCell(tr, count(t.redispatches), 'redispatches');
    var responses = t.responses || {};
    ['2xx', '3xx', '4xx', '5xx'].forEach(function (k) { numCell(tr, count(responses[k]), 'resp-' + k, k === '5xx' && num(responses[k]) > 0); });
    cell(tr, null, 'state').appendChild(el('span', 'pill state-' + state, b.state));
    numCell(tr, decimal(b.weight), 'weight');
    var serving = servingWeight(b);
    numCell(tr, decimal(serving), 'effective' + (serving < num(b.weight) ? ' muted' : ''));
    numCell(tr, millis(b.latencyEwma), 'latency');
    var check = cell(tr, checkText(t.lastCheck), 'last-check' + (t.lastCheck && !t.lastCheck.ok ? ' bad' : ''));
    if (t.lastCheck && t.lastCheck.detail) check.title = String(t.lastCheck.detail);
    numCell(tr, t.lastChangeAt ? duration(num(at) - num(t.lastChangeAt)) : dash(), 'last-change');
    numCell(tr, num(t.downtimeMs) > 0 ? duration(t.downtimeMs) : dash(), 'downtime');
    var ejected = cell(tr, null, 'ejected');
    if (b.ejected) ejected.appendChild(el('span', 'pill state-ejected', 'ejected \\u00b7 ' + duration(num(b.ejectedUntil) - num(at))));
    else ejected.appendChild(el('span', 'muted', dash()));
    var health = cell(tr, null, 'num health');
    if (b.health && typeof b.health === 'object') {
      var max = Math.max(1, num(b.health.rise) + num(b.health.fall) - 1);
      var value = num(b.health.value);
      var wrap = el('div', 'health-meter');
      var bar = el('div', 'bar');
      var fill = el('div', 'fill' + (value < num(b.health.rise) ? ' low' : ''));
      fill.style.width = Math.max(0, Math.min(100, (100 * value) / max)) + '%';
      bar.appendChild(fill);
      wrap.appendChild(bar);
      wrap.appendChild(el('span', null, value + '/' + max));
      health.appendChild(wrap);
    } else {
      health.appendChild(el('span', 'muted', dash()));
    }
    if (adminPath !== null) actionsCell(tr, pool, b);
    return tr;
  }

  // HAProxy's "Backend" line: the pool's own counters, and sums over its servers.
  function totalRow(snap, backends, p) {
    p = p && typeof p === 'object' ? p : {};
    var tr = el('tr', 'total');
    tr.setAttribute('data-total', '');
    cell(tr, null, 'backend').appendChild(el('span', 'id', 'Total'));
    numCell(tr, count(p.queue), 'queue-cur', num(p.queue) > 0);
    numCell(tr, count(p.queueMax), 'queue-max');
    numCell(tr, count(p.rate), 'rate-cur');
    numCell(tr, count(p.rateMax), 'rate-max');
    var inflight = 0, failures = 0, limit = 0, unlimited = false, weight = 0, serving = 0, ejected = 0, up = 0;
    backends.forEach(function (b) {
      inflight += num(b.inflight);
      failures += num(b.failures);
      if (b.maxConnections) limit += num(b.maxConnections); else unlimited = true;
      weight += num(b.weight);
      serving += servingWeight(b);
      if (b.ejected) ejected++;
      if (word(b.state) === 'up') up++;
    });
    numCell(tr, count(p.sessions === undefined ? inflight : p.sessions), 'inflight');
    numCell(tr, count(p.sessionsMax), 'sessions-max');
    numCell(tr, unlimited || backends.length === 0 ? dash() : count(limit), 'sessions-limit');
    numCell(tr, count(p.requests), 'requests');
    var connections = 0;
    var counters = p.backends && typeof p.backends === 'object' ? p.backends : {};
    for (var id in counters) connections += num(counters[id] && counters[id].connections);
    numCell(tr, count(connections), 'connections');
    numCell(tr, bytes(p.bytesIn), 'bytes-in');
    numCell(tr, bytes(p.bytesOut), 'bytes-out');
    numCell(tr, count(p.denied), 'denied', num(p.denied) > 0);
    numCell(tr, count(p.requestErrors), 'err-req', num(p.requestErrors) > 0);
    numCell(tr, count(p.connectionErrors), 'err-conn', num(p.connectionErrors) > 0);
    numCell(tr, count(p.responseErrors), 'err-resp', num(p.responseErrors) > 0);
    numCell(tr, count(failures), 'failures', failures > 0);
    var requests = num(p.requests);
    var rate = requests > 0 ? (100 * num(p.errors)) / requests : 0;
    var rateCell = numCell(tr, requests > 0 ? rate.toFixed(1) + ' %' : dash(), 'failure-rate', rate >= 5);
    rateCell.title = 'requests that failed for the client (5xx or cut short)';
    numCell(tr, count(p.retries), 'retries');
    numCell(tr, count(p.redispatches), 'redispatches');
    var responses = p.responses || {};
    ['2xx', '3xx', '4xx', '5xx'].forEach(function (k) { numCell(tr, count(responses[k]), 'resp-' + k, k === '5xx' && num(responses[k]) > 0); });
    cell(tr, null, 'state').appendChild(el('span', 'pill ' + (snap.tier === 'none' ? 'state-down' : snap.tier === 'panic' ? 'state-down' : 'state-up'), up + '/' + backends.length + ' up'));
    numCell(tr, decimal(weight), 'weight');
    numCell(tr, decimal(serving), 'effective');
    var p50 = p.duration && Array.isArray(p.duration.counts) ? quantile(p.duration.counts, 0.5) : 0;
    var latency = numCell(tr, p50 > 0 ? 'p50 ' + millis(p50) : dash(), 'latency');
    latency.title = 'median total time of the pool\\'s answered requests since counting began';
    blank(tr, 'last-check');
    blank(tr, 'last-change');
    blank(tr, 'downtime');
    numCell(tr, ejected > 0 ? count(ejected) + ' ejected' : dash(), 'ejected');
    blank(tr, 'health');
    if (adminPath !== null) cell(tr, null, 'actions');
    return tr;
  }

  // ── Charts (SVG, drawn from the pool's per-second history) ─────────────────────────────────
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var CHART_W = 300;
  var CHART_H = 64;
  var backendHistory = Object.create(null);

  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var key in attrs) node.setAttribute(key, String(attrs[key]));
    return node;
  }
  function quantile(counts, q) {
    var total = 0;
    for (var i = 0; i < counts.length; i++) total += num(counts[i]);
    if (total === 0) return 0;
    var rank = q * total, seen = 0;
    for (var j = 0; j < counts.length; j++) {
      var c = num(counts[j]);
      if (c > 0 && seen + c >= rank) {
        var lower = j === 0 ? 0 : num(bounds[j - 1]);
        if (j >= bounds.length) return lower;
        return lower + ((num(bounds[j]) - lower) * (rank - seen)) / c;
      }
      seen += c;
    }
    return num(bounds[bounds.length - 1]);
  }
  function niceTop(max) {
    if (!(max > 0)) return 1;
    var step = Math.pow(10, Math.floor(Math.log10(max)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * step >= max) return steps[i] * step;
    return 10 * step;
  }
  function plain(n) { return String(Math.round(num(n) * 10) / 10); }

  // lines: [{ name, cls, values }]; format: a number to its label.
  function chart(kind, title, lines, format, span) {
    var box = el('figure', 'chart');
    box.setAttribute('data-chart', kind);
    var head = el('figcaption', 'chart-head');
    head.appendChild(el('span', 'chart-title', title));
    var max = 0;
    lines.forEach(function (line) {
      line.values.forEach(function (v) { if (num(v) > max) max = num(v); });
      var last = line.values.length ? line.values[line.values.length - 1] : 0;
      var legend = el('span', 'legend ' + line.cls, line.name + ' ' + format(last));
      head.appendChild(legend);
    });
    box.appendChild(head);
    var top = niceTop(max);
    var svg = svgEl('svg', { viewBox: '0 0 ' + CHART_W + ' ' + CHART_H, preserveAspectRatio: 'none', class: 'chart-svg', role: 'img', 'aria-label': title, 'data-max': max });
    svg.appendChild(svgEl('line', { x1: 0, y1: CHART_H / 2, x2: CHART_W, y2: CHART_H / 2, class: 'grid' }));
    svg.appendChild(svgEl('line', { x1: 0, y1: CHART_H - 0.5, x2: CHART_W, y2: CHART_H - 0.5, class: 'axis' }));
    lines.forEach(function (line) {
      var n = line.values.length;
      if (n === 0) return;
      var points = '';
      for (var i = 0; i < n; i++) {
        var x = n === 1 ? CHART_W : (i * CHART_W) / (n - 1);
        var y = CHART_H - (Math.min(top, Math.max(0, num(line.values[i]))) / top) * (CHART_H - 2) - 1;
        points += (i ? ' ' : '') + x.toFixed(1) + ',' + y.toFixed(1);
      }
      svg.appendChild(svgEl('polyline', { points: points, class: 'line ' + line.cls, 'data-series': line.name }));
    });
    box.appendChild(svg);
    box.appendChild(el('div', 'chart-scale', 'max ' + format(top) + ' \\u00b7 ' + span));
    return box;
  }

  function poolCharts(name, snap, p) {
    var wrap = el('div', 'charts');
    var s = p && p.series && Array.isArray(p.series.requests) ? p.series : null;
    if (s !== null) {
      // Trim the idle seconds before the first request of the window (at most the whole window).
      var first = 0;
      while (first < s.requests.length - 60 && !s.requests[first]) first++;
      // The second in progress is left out: a partial count would look like a drop in traffic.
      var req = s.requests.slice(first, -1), errs = s.errors.slice(first, -1), lat = s.latency.slice(first, -1);
      var p50 = lat.map(function (h) { return Array.isArray(h) ? quantile(h, 0.5) : 0; });
      var p99 = lat.map(function (h) { return Array.isArray(h) ? quantile(h, 0.99) : 0; });
      var errorRate = req.map(function (r, i) { return r > 0 ? (100 * num(errs[i])) / r : 0; });
      var span = 'last ' + duration(req.length * num(s.stepMs || 1000));
      wrap.appendChild(chart('rate', 'Requests / s', [{ name: 'all', cls: 'line-total', values: req }, { name: 'failed', cls: 'line-error', values: errs }], plain, span));
      wrap.appendChild(chart('latency', 'Latency (total time)', [{ name: 'p50', cls: 'line-p50', values: p50 }, { name: 'p99', cls: 'line-p99', values: p99 }], millis, span));
      wrap.appendChild(chart('errors', 'Error rate', [{ name: 'failed', cls: 'line-error', values: errorRate }], function (v) { return plain(v) + ' %'; }, span));
    }
    // Requests per second by backend, from the change of each backend's count between two polls
    // (this tab's own history): a failover shows as one line falling and the others rising.
    var backends = Array.isArray(snap.backends) ? snap.backends : [];
    if (backends.length > 0 && backends.length <= 12) {
      var memo = backendHistory[name] || (backendHistory[name] = { at: 0, last: Object.create(null), rates: Object.create(null), samples: 0 });
      var at = num(snap.at);
      var elapsed = memo.at > 0 ? (at - memo.at) / 1000 : 0;
      if (elapsed > 0 || memo.at === 0) {
        backends.forEach(function (b) {
          var key = String(b.id);
          var rates = memo.rates[key] || (memo.rates[key] = new Array(memo.samples).fill(0));
          var previous = memo.last[key];
          if (memo.at > 0) rates.push(previous === undefined || elapsed <= 0 ? 0 : Math.max(0, num(b.requests) - previous) / elapsed);
          if (rates.length > 300) rates.shift();
          memo.last[key] = num(b.requests);
        });
        if (memo.at > 0) memo.samples = Math.min(300, memo.samples + 1);
        memo.at = at;
        // Backends that left the pool leave the history too (a long-open tab under discovery churn).
        var present = Object.create(null);
        backends.forEach(function (b) { present[String(b.id)] = true; });
        for (var gone in memo.rates) if (!present[gone]) { delete memo.rates[gone]; delete memo.last[gone]; }
      }
      var palette = ['line-b0', 'line-b1', 'line-b2', 'line-b3', 'line-b4', 'line-b5'];
      var lines = backends.map(function (b, i) { return { name: String(b.id), cls: palette[i % palette.length], values: memo.rates[String(b.id)] || [] }; });
      wrap.appendChild(chart('backends', 'Requests / s by backend', lines, plain, 'since this tab opened'));
    }
    return wrap;
  }

  function groupHeader(table) {
    var groups = el('tr', 'groups');
    var row = el('tr');
    var current = null, span = 0, th = null;
    COLUMNS.forEach(function (c) {
      if (c[3] !== current || th === null) {
        current = c[3];
        th = el('th', 'group', c[3]);
        groups.appendChild(th);
        span = 0;
      }
      span++;
      th.colSpan = span;
      var h = el('th', c[1], c[0]);
      if (c[2]) h.title = c[2];
      row.appendChild(h);
    });
    var thead = el('thead');
    thead.appendChild(groups);
    thead.appendChild(row);
    table.appendChild(thead);
  }

  function poolSection(name, snap, p) {
    var section = el('section', 'pool');
    section.setAttribute('data-pool', name);
    var head = el('div', 'pool-head');
    head.appendChild(el('h2', 'pool-name', name));
    var backends = Array.isArray(snap.backends) ? snap.backends : [];
    head.appendChild(el('span', 'tag', snap.algorithm));
    head.appendChild(el('span', 'tag tier', 'tier ' + snap.tier));
    head.appendChild(el('span', 'tag eligible', count(snap.eligible) + ' of ' + backends.length + ' eligible'));
    if (snap.tier === 'panic') head.appendChild(el('span', 'tag panic', 'panic mode'));
    section.appendChild(head);
    section.appendChild(poolCharts(name, snap, p));
    var scroll = el('div', 'scroll');
    var table = el('table', 'backends');
    groupHeader(table);
    var body = table.appendChild(el('tbody'));
    var counters = p && p.backends && typeof p.backends === 'object' ? p.backends : {};
    backends.forEach(function (b) {
      var t = Object.prototype.hasOwnProperty.call(counters, b.id) ? counters[b.id] : null;
      body.appendChild(backendRow(b, snap.at, name, t));
    });
    if (backends.length === 0) {
      var empty = el('td', 'empty', 'no backends');
      empty.colSpan = COLUMNS.length;
      body.appendChild(el('tr')).appendChild(empty);
    }
    table.appendChild(el('tfoot')).appendChild(totalRow(snap, backends, p));
    scroll.appendChild(table);
    section.appendChild(scroll);
    return section;
  }

  function describe(e) {
    switch (e.type) {
      case 'state': return e.from + ' \\u2192 ' + e.to + ' (' + e.cause + ')';
      case 'ejected': return 'ejected (' + e.cause + ') until ' + clock(e.until);
      case 'panic': return e.active ? 'panic mode on (' + Math.round(100 * num(e.healthyFraction)) + ' % healthy)' : 'panic mode off';
      case 'restored': return 'back from ejection';
      case 'added': return 'joined the pool';
      case 'removed': return 'left the pool';
      default: return String(e.type);
    }
  }

  // Every event type has its badge, coloured like the state it leads to.
  function eventBadge(e) {
    switch (e.type) {
      case 'state': return el('span', 'pill state-' + word(e.to), e.to);
      case 'ejected': return el('span', 'pill state-ejected', 'ejected');
      case 'restored': return el('span', 'pill state-up', 'restored');
      case 'added': return el('span', 'pill pill-added', 'added');
      case 'removed': return el('span', 'pill state-maintenance', 'removed');
      case 'panic': return el('span', 'pill ' + (e.active ? 'state-down' : 'state-up'), e.active ? 'panic' : 'panic over');
      default: return el('span', 'pill state-maintenance', word(e.type));
    }
  }

  function eventRow(e) {
    var tr = el('tr', 'event-' + word(e.type));
    cell(tr, clock(e.at), 'time');
    // Under --workers: the worker that recorded it first, and how many others did too.
    var others = Array.isArray(e.workers) ? e.workers.length - 1 : 0;
    var workerCell = cell(tr, typeof e.worker === 'number' ? 'w' + num(e.worker) + (others > 0 ? ' +' + others : '') : '\u2014', 'worker-col');
    if (Array.isArray(e.workers)) workerCell.title = 'recorded by workers ' + e.workers.map(num).join(', ');
    cell(tr, e.pool, 'pool');
    cell(tr, e.backend === undefined ? '\\u2014' : e.backend, 'backend');
    var what = cell(tr, null, 'what');
    what.appendChild(eventBadge(e));
    what.appendChild(document.createTextNode(' ' + describe(e)));
    return tr;
  }

  // HTTP/2 and gRPC: one row per listener that serves HTTP/2, one per pool that has seen a stream.
  function grpcText(statuses) {
    var codes = Object.keys(statuses || {}).map(Number).filter(isFinite).sort(function (a, b) { return a - b; });
    return codes.length === 0 ? '\u2014' : codes.map(function (code) { return code + ': ' + count(statuses[code]); }).join(', ');
  }
  function renderProtocol(protocol) {
    var rows = [];
    var frontends = protocol && typeof protocol.frontends === 'object' && protocol.frontends !== null ? protocol.frontends : {};
    var pools = protocol && typeof protocol.pools === 'object' && protocol.pools !== null ? protocol.pools : {};
    Object.keys(frontends).forEach(function (name) {
      var f = frontends[name] || {};
      var tr = el('tr');
      cell(tr, 'listener ' + name, 'pool');
      [f.sessions, f.sessionsTotal, f.streams, f.streamsTotal, f.streamsRefused, f.streamsReset].forEach(function (n) { cell(tr, count(n), 'num'); });
      cell(tr, '\u2014', 'num');
      cell(tr, '\u2014');
      rows.push(tr);
    });
    Object.keys(pools).forEach(function (name) {
      var p = pools[name] || {};
      var tr = el('tr');
      cell(tr, 'pool ' + name, 'pool');
      cell(tr, '\u2014', 'num');
      cell(tr, '\u2014', 'num');
      cell(tr, '\u2014', 'num');
      cell(tr, count(p.h2Streams), 'num');
      cell(tr, '\u2014', 'num');
      cell(tr, '\u2014', 'num');
      cell(tr, count(p.h1ToH2Requests), 'num');
      cell(tr, grpcText(p.grpcStatuses));
      rows.push(tr);
    });
    protocolSection.hidden = rows.length === 0;
    protocolEl.replaceChildren.apply(protocolEl, rows);
  }

  function render(data) {
    document.body.classList.toggle('multi-worker', num(data && data.workers) > 1);
    renderProtocol(data && data.protocol);
    var pools = data && typeof data.pools === 'object' && data.pools !== null ? data.pools : {};
    var traffic = data && typeof data.traffic === 'object' && data.traffic !== null ? data.traffic : {};
    if (Array.isArray(data.durationBoundsMs)) bounds = data.durationBoundsMs;
    // A weight being typed keeps its focus and caret across the redraw.
    var focused = null;
    for (var key in weightInputs) if (weightInputs[key] === document.activeElement) focused = key;
    previousInputs = weightInputs;
    weightInputs = Object.create(null);
    var sections = Object.keys(pools).map(function (name) {
      return poolSection(name, pools[name] || {}, Object.prototype.hasOwnProperty.call(traffic, name) ? traffic[name] : null);
    });
    poolsEl.replaceChildren.apply(poolsEl, sections);
    if (focused !== null && weightInputs[focused]) {
      var input = weightInputs[focused];
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    }
    var events = Array.isArray(data.events) ? data.events.slice().reverse() : [];
    var rows = events.map(eventRow);
    if (rows.length === 0) {
      var empty = el('td', 'empty', 'no transitions yet');
      empty.colSpan = 5;
      var tr = el('tr');
      tr.appendChild(empty);
      rows.push(tr);
    }
    eventsEl.replaceChildren.apply(eventsEl, rows);
  }

  function setStatus(ok) {
    if (ok) lastUpdate = Date.now();
    statusEl.className = ok ? 'live' : 'stale';
    statusEl.textContent = ok ? 'live \\u00b7 updated ' + clock(lastUpdate)
      : 'connection lost, retrying' + (lastUpdate ? ' \\u00b7 last update ' + clock(lastUpdate) : '');
  }

  function dataUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set('format', 'json');
    url.hash = '';
    return url.toString();
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(poll, refreshMs);
  }

  function poll() {
    // A hidden tab does not poll; coming back polls at once (below).
    if (document.hidden) return schedule();
    fetch(dataUrl(), { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (data) {
        // Redrawn after the pointer is released, so the press and the click hit the same button.
        if (pointerDown) pending = data;
        else render(data);
        setStatus(true);
      }, function () { setStatus(false); })
      .then(schedule, schedule);
  }

  document.addEventListener('visibilitychange', function () { if (!document.hidden) { clearTimeout(timer); poll(); } });
  if (adminPath !== null) {
    poolsEl.parentNode.insertBefore(adminBar(), poolsEl);
    poolsEl.addEventListener('pointerdown', function () { pointerDown = true; });
    var released = function () {
      pointerDown = false;
      if (pending === null) return;
      var data = pending;
      pending = null;
      // After the click event that follows this pointerup.
      setTimeout(function () { render(data); }, 0);
    };
    document.addEventListener('pointerup', released);
    document.addEventListener('pointercancel', released);
  }
  poll();
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * The page's Content-Security-Policy: nothing but this script and stylesheet, `fetch` to its own
 * origin, no framing, no forms, no base-URL tricks, and Trusted Types so no markup sink can be used.
 */
export const STATS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** Escape text for HTML element content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The whole document for a title and a refresh interval. */
export function renderStatsPage(title: string, refreshMs: number, adminPath?: string): string {
  const safeTitle = escapeHtml(title);
  const admin = adminPath === undefined ? '' : ` data-admin-path="${escapeHtml(adminPath)}"`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${safeTitle}</title>
<style>${STYLE}</style>
</head>
<body data-refresh-ms="${refreshMs}"${admin}>
<header><h1>${safeTitle}</h1><span id="status">loading\u2026</span></header>
<noscript>This page needs JavaScript to show live data; the same data is at ?format=json.</noscript>
<main>
<div id="pools"></div>
<section class="events-section" id="protocol-section" hidden>
<div class="pool-head"><h2>HTTP/2 and gRPC</h2></div>
<div class="scroll"><table class="events protocol"><thead><tr><th>Where</th><th>Sessions</th><th>Sessions total</th><th>Streams</th><th>Streams total</th><th>Refused</th><th>Reset</th><th>HTTP/1.1 to HTTP/2</th><th>gRPC calls by status</th></tr></thead><tbody id="protocol-body"></tbody></table></div>
</section>
<section class="events-section">
<div class="pool-head"><h2>Recent transitions</h2></div>
<div class="scroll"><table class="events"><thead><tr><th>Time</th><th class="worker-col">Worker</th><th>Pool</th><th>Backend</th><th>Event</th></tr></thead><tbody id="events-body"></tbody></table></div>
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
