#!/usr/bin/node
// The causality lab's shop on Node.js `http` (eventloop model): the same logic as shop.py.
// usage: node shop.js ROLE BIND_IP PORT      (LAB_LOGDIR: where the truth logs go)
// One http.Agent({keepAlive: true, maxSockets: 16}) per process, shared by all requests.
// Truth logs (one fs.writeSync per line on an O_APPEND fd), same fields as shop.py:
//   ROLE.access  recv_ns done_ns peer server METHOD path status pid     (per inbound request)
//   ROLE.calls   caller call_client call_server call_send_ns parent_client parent_server
//                parent_recv_ns callee METHOD path status attempt pid   (per outbound attempt)
// call_send_ns: taken on the request's 'socket' event (or the socket's 'connect' event when the
// agent opened a new socket), i.e. just before the request head is written to that socket.
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');

const [ROLE, BIND, PORT] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const SELF = `${BIND}:${PORT}`;
const ADDR = {
  front: ['10.78.0.10', 8000], users: ['10.78.0.11', 8001], orders: ['10.78.0.12', 8002],
  stock: ['10.78.0.13', 8003], pricing: ['10.78.0.14', 8004],
};
const LOGDIR = process.env.LAB_LOGDIR || '.';
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

// wall clock in ns: process.hrtime (CLOCK_MONOTONIC) plus CLOCK_REALTIME - CLOCK_MONOTONIC,
// which Node cannot read with ns precision itself (Date.now() is whole ms), so a python3 child
// reads it: the realtime read between the closest pair of monotonic reads.
const OFFSET = BigInt(require('child_process').execFileSync('/usr/bin/python3', ['-c', `
import time
best = None
for _ in range(2000):
    m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    r = time.clock_gettime_ns(time.CLOCK_REALTIME)
    m2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    if best is None or m2 - m1 < best[0]:
        best = (m2 - m1, r - (m1 + m2) // 2)
print(best[1])
`]).toString().trim());
const nowNs = () => OFFSET + process.hrtime.bigint();

const fds = {};
function log(kind, fields) {
  const name = `${ROLE}.${kind}`;
  if (fds[name] === undefined) fds[name] = fs.openSync(path.join(LOGDIR, name), 'a');
  fs.writeSync(fds[name], fields.join('\t') + '\n');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const uniform = (a, b) => a + Math.random() * (b - a);
const work = () => sleep(uniform(1, 4));

function call1(parent, callee, method, p, obj, attempt) {
  return new Promise((resolve) => {
    const [host, port] = ADDR[callee];
    const headers = { Accept: 'application/json' };
    let data = null;
    if (obj !== null && obj !== undefined) {
      data = Buffer.from(JSON.stringify(obj));
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = data.length;
    }
    let tSend = null;
    let local = '-';
    let done = false;
    const finish = (status, body) => {
      if (done) return;
      done = true;
      log('calls', [ROLE, local, `${host}:${port}`, tSend === null ? nowNs() : tSend, parent.client, parent.server,
        parent.recv, callee, method, p, status, attempt, process.pid]);
      resolve({ status, body });
    };
    const req = http.request({ host, port, method, path: p, agent, headers });
    req.on('socket', (s) => {
      const stamp = () => { tSend = nowNs(); local = `${s.localAddress}:${s.localPort}`; };
      if (s.connecting) s.once('connect', stamp); else stamp();
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let body = null;
        try { body = JSON.parse(Buffer.concat(chunks).toString()); } catch (e) { body = null; }
        finish(res.statusCode, body);
      });
    });
    req.on('error', (e) => { process.stderr.write(`${ROLE}: ${method} ${callee} ${p}: ${e}\n`); finish('ERR', null); });
    req.end(data);
  });
}

async function call(parent, callee, method, p, obj) {
  let r = await call1(parent, callee, method, p, obj, 1);
  if (r.status === 503) {
    await sleep(2);
    r = await call1(parent, callee, method, p, obj, 2);
  }
  return r;
}

// deterministic skus per order id (a small LCG; the Python model uses random.Random(order_id))
function skusFor(oid) {
  let x = (Number(oid) || 0) >>> 0;
  const next = () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x >>> 8; };
  const n = 1 + (next() % 4);
  const out = [];
  for (let i = 0; i < n; i++) out.push(`sku-${next() % 50}`);
  return out;
}

const sumChars = (s) => [...s].reduce((a, c) => a + c.charCodeAt(0), 0);

async function handle(parent, method, url, body) {
  const [p, query = ''] = url.split('?');
  const seg = p.split('/').filter((s) => s);
  const q = Object.fromEntries(query.split('&').filter((s) => s).map((kv) => kv.split('=')));
  if (ROLE === 'front' && method === 'GET' && seg.length === 2 && seg[0] === 'checkout') {
    const oid = seg[1];
    const uid = q.user || '0';
    const [u, o] = await Promise.all([
      call(parent, 'users', 'GET', `/users/${uid}`),
      call(parent, 'orders', 'GET', `/orders/${oid}`),
    ]);
    const skus = o.status === 200 ? o.body.skus : [];
    const stock = {};
    for (const sku of skus) {
      const s = await call(parent, 'stock', 'GET', `/stock/${sku}`);
      stock[sku] = s.status === 200 ? s.body.qty : null;
    }
    const pr = await call(parent, 'pricing', 'POST', '/quote', { order_id: oid, user: uid, skus });
    if (Math.random() < 0.10) await sleep(uniform(20, 40));
    const ok = u.status === 200 && o.status === 200 && pr.status === 200;
    return [ok ? 200 : 502, { order_id: oid, user: u.body && u.body.name, stock, total: pr.body && pr.body.total }];
  }
  if (ROLE === 'orders' && method === 'GET' && seg.length === 2 && seg[0] === 'orders') {
    await work();
    const oid = seg[1];
    const r = await call(parent, 'stock', 'GET', `/reserve/${oid}`);
    return [r.status === 200 ? 200 : r.status === 503 ? 503 : 502, { order_id: oid, skus: skusFor(oid), reserved: r.status === 200 }];
  }
  if (ROLE === 'users' && method === 'GET' && seg.length === 2 && seg[0] === 'users') {
    await work();
    const u = Number(seg[1]) || 0;
    return [200, { id: u, name: `user-${String(u).padStart(3, '0')}`, tier: ['gold', 'silver', 'basic'][u % 3] }];
  }
  if (ROLE === 'stock' && method === 'GET' && seg.length === 2 && (seg[0] === 'stock' || seg[0] === 'reserve')) {
    await work();
    if (Math.random() < 0.05) return [503, { error: 'busy' }];
    if (seg[0] === 'stock') return [200, { sku: seg[1], qty: (sumChars(seg[1]) * 37) % 100 }];
    return [200, { reservation: seg[1], ok: true }];
  }
  if (ROLE === 'pricing' && method === 'POST' && p === '/quote') {
    await work();
    const r = JSON.parse(body.toString() || '{}');
    const total = (r.skus || []).reduce((a, s) => a + 100 + (7 * sumChars(s)) % 900, 0);
    return [200, { order_id: r.order_id, total, currency: 'EUR' }];
  }
  return [404, { error: 'not found' }];
}

const server = http.createServer((req, res) => {
  const recv = nowNs();
  const parent = { client: `${req.socket.remoteAddress}:${req.socket.remotePort}`, server: SELF, recv };
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let code; let obj;
    if (req.url === '/health') {
      [code, obj] = [200, { ok: true, service: ROLE }];
    } else {
      try {
        [code, obj] = await handle(parent, req.method, req.url, Buffer.concat(chunks));
      } catch (e) {
        process.stderr.write(`${ROLE}: ${req.method} ${req.url}: ${e}\n`);
        [code, obj] = [500, { error: 'internal' }];
      }
    }
    const data = Buffer.from(JSON.stringify(obj) + '\n');
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': data.length });
    res.end(data, () => {
      if (req.url !== '/health') {
        log('access', [recv, nowNs(), parent.client, SELF, req.method, req.url, code, process.pid]);
      }
    });
  });
});
server.keepAliveTimeout = 60000;
server.listen(PORT, BIND, 511);
process.on('SIGTERM', () => process.exit(0));
