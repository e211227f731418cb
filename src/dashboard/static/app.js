// The provider dashboard: reads the daemon's operator API (the routes `provider status`, `leases`,
// `logs` and `earnings` call, and /v1/operator/{capacity,earnings/history,errors}) and draws it.
// No framework and no build step; every text from the API goes in through textContent.
'use strict';

const POLL_MS = 2000;
const MAX_BACKOFF_MS = 30000;
const TERMINAL = new Set(['settled', 'failed', 'rejected']);
const MAX_LOG_LINES = 2000;

const state = { decimals: 18, symbol: 'tokens', selected: null, logs: null, charts: {}, lastLeases: [] };

const $ = (selector) => document.querySelector(selector);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('data-')) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ''));
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

async function getJson(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${path}: HTTP ${res.status}`);
  }
  if (!res.ok) {
    const error = body && body.error;
    throw new Error(error ? `${error.code}: ${error.message}${error.fix ? ` (${error.fix})` : ''}` : `${path}: HTTP ${res.status}`);
  }
  return body;
}

// ---- formatting

function amount(text) {
  if (text === null || text === undefined) return '—';
  const value = BigInt(text);
  const unit = 10n ** BigInt(state.decimals);
  const whole = value / unit;
  let frac = (value % unit).toString().padStart(state.decimals, '0');
  if (whole > 0n) frac = frac.slice(0, 4);
  else {
    const lead = frac.search(/[1-9]/);
    frac = lead < 0 ? '' : frac.slice(0, lead + 4);
  }
  frac = frac.replace(/0+$/, '');
  return `${whole}${frac ? `.${frac}` : ''} ${state.symbol}`;
}

/** Token units as a float, for charts only (amounts on the page are exact). */
function tokens(text) {
  return Number(BigInt(text)) / 10 ** state.decimals;
}

function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function when(seconds) {
  if (!seconds) return '—';
  const date = new Date(seconds * 1000);
  return Date.now() - date.getTime() < 86400000 ? date.toLocaleTimeString() : date.toLocaleString();
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

const short = (address) => (address ? `${address.slice(0, 6)}…${address.slice(-4)}` : '—');
/** Lease ids are 256-bit numbers on some marketplaces: the ends tell them apart. */
const shortId = (id) => (id.length > 12 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id);

function dl(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([term, value]) => [el('dt', {}, term), el('dd', {}, value)]));
}

// ---- views

function renderStatus(status) {
  $('#provider').textContent = status.provider;
  const pill = $('#state');
  const [text, kind] = !status.docker.reachable
    ? ['Docker unreachable', 'bad']
    : status.chain.headBlock === null
      ? ['chain unreachable', 'bad']
      : status.accepting
        ? ['accepting leases', 'ok']
        : ['draining', 'warn'];
  pill.textContent = text;
  pill.className = `pill ${kind}`;
  const counts = Object.entries(status.leases).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ') || 'none';
  const lag = status.chain.headBlock !== null && status.chain.cursorBlock !== null ? status.chain.headBlock - status.chain.cursorBlock : null;
  dl($('#status'), [
    ['version', status.version],
    ['chain', `${status.chainId}${status.devnet ? ' (devnet)' : ''}`],
    ['chain head', status.chain.headBlock === null ? 'not answering' : `block ${status.chain.headBlock}${lag !== null ? `, events ${lag} behind` : ''}`],
    ['Docker', status.docker.reachable ? 'reachable' : 'NOT reachable'],
    ['up', duration(Date.now() / 1000 - status.startedAt)],
    ['leases', counts],
    ...(status.reachability ? [['reachable', reachabilityText(status.reachability)]] : []),
    ...(status.gpus && status.gpus.length > 0 ? [['GPUs', `${status.gpus.filter((gpu) => gpu.status === 'healthy').length} of ${status.gpus.length} healthy`]] : []),
  ]);
}

const VERIFIED = { outside: 'verified from outside', 'no-vantage': 'not verified from outside', failed: 'NOT reachable from outside', 'not-needed': 'local only' };

function reachabilityText(r) {
  return `${r.path === 'none' ? 'NO PATH' : r.path} at ${r.url}: ${VERIFIED[r.verified] ?? r.verified}${r.fix ? ` (fix: ${r.fix})` : ''}`;
}

function capacityRow(label, allocated, total, format) {
  const share = total > 0 ? Math.min(100, (allocated / total) * 100) : 0;
  const bar = el('div', { class: 'bar' }, el('div'));
  bar.firstChild.style.width = `${share.toFixed(1)}%`;
  return [el('div', {}, `${label}: ${format(allocated)} allocated of ${format(total)}, ${format(Math.max(0, total - allocated))} free`), bar];
}

function renderCapacity(capacity) {
  const cores = (m) => `${(m / 1000).toFixed(m % 1000 === 0 ? 0 : 2)} cores`;
  $('#capacity').replaceChildren(
    ...capacityRow('CPU', capacity.allocated.cpuMillis, capacity.total.cpuMillis, cores),
    ...capacityRow('Memory', capacity.allocated.memoryBytes, capacity.total.memoryBytes, bytes),
    ...capacityRow('Disk', capacity.allocated.diskBytes, capacity.total.diskBytes, bytes),
    ...(capacity.total.gpus > 0 ? capacityRow('GPUs', capacity.allocated.gpus, capacity.total.gpus, String) : []),
    el('div', { class: 'muted' }, `held by ${capacity.holders.leases} lease(s) and ${capacity.holders.quotes} open quote(s)`),
  );
  const section = $('#gpus-section');
  section.hidden = capacity.gpus.length === 0 && capacity.gpusNotOffered.length === 0;
  fill(
    $('#gpus tbody'),
    capacity.gpus.map((gpu) =>
      el(
        'tr',
        {},
        el('td', {}, gpu.profile ? `${gpu.index} (${gpu.profile})` : gpu.index),
        el('td', {}, gpu.model),
        el('td', {}, gpu.heldBy ? `${gpu.heldBy.kind} ${gpu.heldBy.holder}` : 'free'),
        el('td', {}, gpu.health ?? '—'),
        el('td', {}, gpu.utilizationPercent === null ? '—' : `${gpu.utilizationPercent}%`),
        el('td', {}, gpu.memoryUsedBytes === null ? '—' : bytes(gpu.memoryUsedBytes)),
      ),
    ),
  );
  const notes = capacity.gpusNotOffered.map((gpu) => `GPU ${gpu.index} (${gpu.model}) not offered: ${gpu.detail}`);
  if (capacity.readAt) notes.push(`readings from ${new Date(capacity.readAt).toLocaleString()}`);
  $('#gpus-note').textContent = notes.join('; ');
}

function renderMoney(earnings) {
  if (earnings.token) {
    state.decimals = earnings.token.decimals ?? 18;
    state.symbol = earnings.token.symbol ?? 'tokens';
  }
  const earned = earnings.leases.reduce((sum, lease) => sum + BigInt(lease.earned), 0n);
  dl($('#money'), [
    ['earned', amount(earned.toString())],
    ['withdrawable', amount(earnings.withdrawable)],
    ['claims pending', amount(earnings.claimedPending)],
    ['withdrawn', amount(earnings.withdrawn)],
    ['balance', amount(earnings.balance)],
    ['payout to', short(earnings.payout)],
  ]);
}

function renderPending(earnings, leases) {
  const items = [];
  if (earnings.withdrawal) items.push(`withdrawal ${earnings.withdrawal.key}: ${earnings.withdrawal.state}`);
  if (earnings.claimedPending !== '0') items.push(`claims waiting out the challenge window: ${amount(earnings.claimedPending)}`);
  for (const lease of leases) {
    const cp = lease.lastCheckpoint;
    if (!cp || cp.status === 'final') continue;
    const what = cp.status === 'claimed' ? 'claimed, waiting out the challenge window' : cp.status === 'redeemed' ? 'redeemed, awaiting confirmation' : cp.countersigned ? 'countersigned, to redeem' : 'signed, awaiting the tenant';
    items.push(`lease ${shortId(lease.leaseId)}: checkpoint ${cp.seq} ${what} (${amount(lease.earned)})`);
  }
  $('#pending').replaceChildren(...(items.length ? items.map((t) => el('li', {}, t)) : [el('li', { class: 'muted' }, 'Nothing pending.')]));
}

function renderErrors(errors) {
  $('#errors-empty').hidden = errors.length > 0;
  fill(
    $('#errors tbody'),
    errors.map((e) => el('tr', {}, el('td', {}, when(e.at)), el('td', { class: 'mono' }, e.code), el('td', {}, e.message), el('td', {}, e.fix ?? '—'))),
  );
}

function renderLeases(leases) {
  state.lastLeases = leases;
  $('#leases-empty').hidden = leases.length > 0;
  const sorted = [...leases].sort((a, b) => b.openedAt - a.openedAt);
  fill(
    $('#leases tbody'),
    sorted.map((lease) => {
      const cp = lease.lastCheckpoint;
      const row = el(
        'tr',
        { 'data-lease': lease.leaseId, 'data-state': lease.state, class: lease.leaseId === state.selected ? 'selected' : '' },
        el('td', { class: 'mono', title: lease.leaseId }, shortId(lease.leaseId)),
        el('td', { class: `state-${lease.state}` }, lease.endReason ? `${lease.state} (${lease.endReason})` : lease.state),
        el('td', { class: 'mono' }, lease.image ?? '—'),
        el('td', { class: 'mono', title: lease.tenant }, short(lease.tenant)),
        el('td', {}, when(lease.startedAt)),
        el('td', {}, amount(lease.earned)),
        el('td', {}, cp ? `#${cp.seq} ${cp.status}${cp.countersigned ? ', countersigned' : ''}` : '—'),
      );
      row.addEventListener('click', () => select(lease.leaseId));
      return row;
    }),
  );
}

// ---- charts (uPlot)

function chart(id, options, data) {
  const box = $(`#${id} .plot`);
  const width = Math.max(300, box.clientWidth || 600);
  const existing = state.charts[id];
  if (existing && existing.series.length === options.series.length && existing.width === width) {
    existing.setData(data);
    return;
  }
  if (existing) existing.destroy();
  state.charts[id] = new uPlot({ ...options, width, height: 170 }, data, box);
}

const small = (u, values) => values.map((v) => (v === 0 ? '0' : Math.abs(v) >= 1000 || Math.abs(v) < 0.001 ? v.toExponential(1) : String(+v.toPrecision(3))));

function renderEarningsChart(history) {
  const figure = $('#earnings-chart');
  const points = history.points.slice();
  const last = points.at(-1);
  figure.dataset.points = String(points.length);
  figure.dataset.earned = last ? last.earned : '0';
  figure.dataset.paid = last ? last.paid : '0';
  if (typeof uPlot === 'undefined') return;
  // The totals hold until now: the line runs on to the right edge.
  if (last) points.push({ at: Math.max(last.at + 1, Math.floor(Date.now() / 1000)), earned: last.earned, paid: last.paid });
  const stepped = uPlot.paths.stepped({ align: 1 });
  chart(
    'earnings-chart',
    {
      series: [
        {},
        { label: `earned (${state.symbol})`, stroke: '#2b6cb0', width: 2, paths: stepped, value: (u, v) => (v === null ? '—' : String(+v.toPrecision(6))) },
        { label: `paid (${state.symbol})`, stroke: '#1f8a4c', fill: 'rgba(31,138,76,0.12)', width: 2, paths: stepped, value: (u, v) => (v === null ? '—' : String(+v.toPrecision(6))) },
      ],
      axes: [{}, { values: small, size: 60 }],
    },
    [points.map((p) => p.at), points.map((p) => tokens(p.earned)), points.map((p) => tokens(p.paid))],
  );
}

function renderLeaseChart(earnings) {
  const figure = $('#lease-chart');
  const leases = [...earnings.leases].sort((a, b) => (BigInt(a.leaseId) < BigInt(b.leaseId) ? -1 : 1)).slice(-20);
  figure.dataset.leases = String(leases.length);
  if (typeof uPlot === 'undefined' || leases.length === 0) return;
  const xs = leases.map((_, i) => i);
  chart(
    'lease-chart',
    {
      scales: { x: { time: false, range: [-0.5, Math.max(leases.length - 0.5, 0.5)] } },
      series: [
        { label: 'lease', value: (u, i) => (i === null || !leases[i] ? '—' : shortId(leases[i].leaseId)) },
        { label: 'earned', stroke: '#2b6cb0', fill: 'rgba(43,108,176,0.35)', paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false } },
        { label: 'paid', stroke: '#1f8a4c', fill: 'rgba(31,138,76,0.6)', paths: uPlot.paths.bars({ size: [0.35, 30] }), points: { show: false } },
      ],
      axes: [{ values: (u, values) => values.map((i) => (Number.isInteger(i) && leases[i] ? shortId(leases[i].leaseId) : '')), splits: () => xs }, { values: small, size: 60 }],
    },
    [xs, leases.map((l) => tokens(l.earned)), leases.map((l) => tokens(l.paid))],
  );
}

// ---- one lease: history, checkpoints, logs

function select(leaseId) {
  if (state.selected === leaseId) return;
  state.selected = leaseId;
  history.replaceState(null, '', `#lease=${encodeURIComponent(leaseId)}`);
  $('#lease-detail').hidden = false;
  $('#detail-id').textContent = leaseId;
  for (const row of document.querySelectorAll('#leases tbody tr')) row.classList.toggle('selected', row.dataset.lease === leaseId);
  followLogs(leaseId);
  void refreshDetail().catch(detailFailed);
}

function detailFailed(err) {
  $('#transitions').replaceChildren(el('li', {}, err.message));
}

function closeDetail() {
  state.selected = null;
  if (state.logs) state.logs.abort();
  state.logs = null;
  $('#lease-detail').hidden = true;
  history.replaceState(null, '', '#');
}

async function refreshDetail() {
  const leaseId = state.selected;
  if (!leaseId) return;
  const lease = await getJson(`/v1/operator/leases/${encodeURIComponent(leaseId)}`);
  if (state.selected !== leaseId) return;
  $('#transitions').replaceChildren(
    ...lease.transitions.map((t) => el('li', {}, `${when(t.at)} ${t.from} → ${t.to} (${t.event})${t.reason ? `: ${t.reason}` : ''}`)),
  );
  fill(
    $('#checkpoints tbody'),
    lease.checkpoints.map((cp) => el('tr', {}, el('td', {}, cp.seq), el('td', {}, amount(cp.cumulativeAmount)), el('td', {}, cp.final ? `${cp.status} (final)` : cp.status), el('td', {}, cp.countersigned ? 'yes' : 'no'))),
  );
}

/** Streams the lease's log (NDJSON) into the page; reconnects while the lease has not started or the stream broke. */
function followLogs(leaseId) {
  if (state.logs) state.logs.abort();
  const controller = new AbortController();
  state.logs = controller;
  const pre = $('#logs');
  const status = $('#logs-state');
  let attempt = 0;
  const append = (text, cls) => {
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(el('span', { class: cls }, `${text}\n`));
    while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
    if (stick) pre.scrollTop = pre.scrollHeight;
  };
  const run = async () => {
    pre.replaceChildren();
    status.textContent = '(connecting)';
    let end = null;
    try {
      const res = await fetch(`/v1/operator/leases/${encodeURIComponent(leaseId)}/logs?follow=1&tail=${MAX_LOG_LINES}`, { signal: controller.signal, cache: 'no-store' });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      status.textContent = '(streaming)';
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (!line.trim()) continue;
          const message = JSON.parse(line);
          if (message.end) end = message;
          else append(message.line, message.stream);
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      end = { reason: 'error', error: { message: String(err.message || err) } };
    }
    if (controller.signal.aborted) return;
    const lease = state.lastLeases.find((l) => l.leaseId === leaseId);
    const live = !lease || !TERMINAL.has(lease.state);
    if (end && end.reason === 'end-of-log') {
      append('— end of log', 'end');
      status.textContent = '(ended)';
      return;
    }
    // Not started yet (no container), or the daemon restarted: ask again a few times.
    if (live && attempt < 30) {
      attempt += 1;
      status.textContent = `(waiting: ${end && end.error ? end.error.message : 'no stream'})`;
      setTimeout(() => void run(), Math.min(2000 * attempt, 10000));
    } else status.textContent = `(stopped${end && end.error ? `: ${end.error.message}` : ''})`;
  };
  void run();
}

// ---- polling

async function refresh() {
  const [status, capacity, leases, earnings, earningsHistory, errors] = await Promise.all([
    getJson('/v1/status'),
    getJson('/v1/operator/capacity'),
    getJson('/v1/operator/leases'),
    getJson('/v1/operator/earnings'),
    getJson('/v1/operator/earnings/history'),
    getJson('/v1/operator/errors'),
  ]);
  renderStatus(status);
  renderMoney(earnings);
  renderCapacity(capacity);
  renderLeases(leases.leases);
  renderPending(earnings, leases.leases);
  renderErrors(errors.errors);
  renderEarningsChart(earningsHistory);
  renderLeaseChart(earnings);
  if (state.selected) await refreshDetail().catch(detailFailed);
}

async function loop() {
  let delay = POLL_MS;
  for (;;) {
    try {
      await refresh();
      delay = POLL_MS;
      $('#offline').hidden = true;
      $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      // Backs off while the daemon is away (restarting, stopped), up to 30 s between tries.
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      const banner = $('#offline');
      banner.hidden = false;
      banner.textContent = `The daemon does not answer (${err.message}); trying again in ${Math.round(delay / 1000)} s.`;
    }
    await new Promise((resolve) => setTimeout(resolve, document.hidden ? Math.max(delay, 10000) : delay));
  }
}

$('#detail-close').addEventListener('click', closeDetail);
const linked = /^#lease=(\d+)$/.exec(location.hash);
if (linked) select(linked[1]);
void loop();
