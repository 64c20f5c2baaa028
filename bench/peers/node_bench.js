#!/usr/bin/env node
// Node peer of taskscope-bench.
//
// Prints one line per figure, exactly `NAME: VALUE UNIT`; lines starting with '#' are notes.
//   spawn_join_ns  call a trivial async function and await its promise, ns per iteration
//   switch_ns      two async functions handing control to each other through promises,
//                  ns per handoff
//   pending_bytes  RSS growth per async function suspended on one never-resolved promise
//   pending_tasks  that N
//
// Flags: --quick (smaller N), --only NAME (one figure). Run with --expose-gc for exact
// collection points; without it the script enables gc through v8 flags itself.
'use strict';

const fs = require('fs');
const v8 = require('v8');
const vm = require('vm');

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : null;
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: node [--expose-gc] node_bench.js [--quick] [--only NAME]');
  process.exit(0);
}

let gc = global.gc;
if (typeof gc !== 'function') {
  v8.setFlagsFromString('--expose-gc');
  gc = vm.runInNewContext('gc');
}

const PAGE = 4096;
function rssBytes() {
  // Same source as the other peers; process.memoryUsage().rss as a fallback.
  try {
    return Number(fs.readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * PAGE;
  } catch (e) {
    return process.memoryUsage().rss;
  }
}

function emit(name, value, unit) {
  console.log(`${name}: ${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`);
}

const now = () => process.hrtime.bigint();

async function trivial() {}

async function spawnJoin(n, runs) {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = now();
    for (let i = 0; i < n; i++) await trivial();
    best = Math.min(best, Number(now() - t0) / n);
  }
  return best;
}

// A one-way handoff: wait() suspends until the other side calls wake(). The promise is
// replaced as soon as it resolves, before the waiter hands control back.
class Baton {
  constructor() { this.arm(); }
  arm() { this.p = new Promise((res) => { this.res = res; }); }
  async wait() { await this.p; this.arm(); }
  wake() { this.res(); }
}

async function switchBench(n, runs) {
  // n round trips = 2n switches: A wakes B and waits; B wakes A and waits.
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const a = new Baton(), b = new Baton();
    const sideB = (async () => {
      for (let i = 0; i < n; i++) { await b.wait(); a.wake(); }
    })();
    const t0 = now();
    for (let i = 0; i < n; i++) { b.wake(); await a.wait(); }
    best = Math.min(best, Number(now() - t0) / (2 * n));
    await sideB;
  }
  return best;
}

async function pending(n) {
  let release;
  const never = new Promise((res) => { release = res; });
  let started = 0;
  async function waiter() { started++; await never; }
  const handles = new Array(n).fill(null); // allocated before the first measurement
  gc(); gc();
  const before = rssBytes();
  for (let i = 0; i < n; i++) handles[i] = waiter();
  await null;
  gc(); gc();
  const after = rssBytes();
  if (started !== n) throw new Error(`only ${started} of ${n} waiters started`);
  release();
  await Promise.all(handles);
  return (after - before) / n;
}

(async () => {
  const [nSpawn, nSwitch, nPending, runs] = quick ? [100000, 100000, 100000, 3]
                                                  : [1000000, 500000, 100000, 5];
  const want = (name) => only === null || only === name;
  console.log(`# node ${process.version}`);
  if (want('spawn_join_ns')) emit('spawn_join_ns', await spawnJoin(nSpawn, runs), 'ns');
  if (want('switch_ns')) emit('switch_ns', await switchBench(nSwitch, runs), 'ns');
  if (want('pending_bytes')) {
    emit('pending_bytes', await pending(nPending), 'bytes');
    emit('pending_tasks', nPending, 'count');
  }
})().catch((e) => { console.error(e); process.exit(1); });
