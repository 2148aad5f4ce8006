#!/usr/bin/env node
// BullMQ baseline: N no-op jobs through Redis, timed end to end.
//
//     npm install --prefix bench/bullmq      # once
//     node bench/bullmq/run.mjs --jobs 5000 [--concurrency 50] [--deadline 300]
//
// Starts a BullMQ Worker (no-op processor, concurrency 50) in its own process (worker.mjs) and waits
// until it is ready, then adds N jobs to a fresh queue from this process with queue.addBulk (500 per
// call), waits until the queue counts N completed jobs, and prints one JSON line (the last line of
// stdout): throughput = N / (last completion - start of the first addBulk), latency = completion -
// add per job (p50/p99, nearest rank).
//
// Add time is the job's `timestamp` (Date.now() as addBulk builds the job, before sending it);
// completion time is its `finishedOn`, which the worker takes (Date.now()) right before the Lua
// script that moves the job to `completed` stores it, i.e. when the completion is recorded, as with
// Celery's date_done and Taskmesh's own figures. Both are wall-clock milliseconds on this machine,
// so latencies have 1 ms resolution. Completed jobs are kept (removeOnComplete: false) to read them.
// The queue (bench-bullmq-<pid>-<time>) is obliterated at the end: nothing is left in Redis.
// Redis is REDIS_URL (default redis://127.0.0.1:6379). Everything else is logged to stderr.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';

const VERSION = JSON.parse(readFileSync(new URL('./node_modules/bullmq/package.json', import.meta.url))).version;
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const CHUNK = 500; // jobs per addBulk call
const PAGE = 1000; // jobs per getJobs call when reading the results back
const POLL_MS = 20;

class Fail extends Error {} // an expected failure: message only, exit 1
const log = (...args) => console.error(...args);
const percentile = (sorted, p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]; // nearest rank
const exited = (child) => child.exitCode !== null || child.signalCode !== null;

function startWorker(queueName, concurrency, timeoutMs = 60_000) {
  // The worker's stdout goes to our stderr, so that our stdout holds only the JSON line.
  const child = fork(fileURLToPath(new URL('./worker.mjs', import.meta.url)), [queueName, String(concurrency)],
    { stdio: ['ignore', 2, 2, 'ipc'], env: { ...process.env, REDIS_URL } });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Fail(`worker not ready after ${timeoutMs / 1000}s`)), timeoutMs);
    child.on('message', (msg) => msg?.ready && (clearTimeout(timer), resolve()));
    child.once('exit', (code, signal) => (clearTimeout(timer), reject(new Fail(`worker exited (${code ?? signal}) before it was ready`))));
  });
  return { child, ready };
}

async function stopWorker(child, timeoutMs = 30_000) {
  if (exited(child)) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM'); // worker.close(): lets active jobs finish
  const timer = setTimeout(() => (log('worker did not stop, killing it'), child.kill('SIGKILL')), timeoutMs);
  await gone;
  clearTimeout(timer);
}

async function waitForCompleted(queue, n, child, deadlineS) {
  const deadline = performance.now() + deadlineS * 1000;
  for (;;) {
    const { completed, failed } = await queue.getJobCounts('completed', 'failed');
    if (failed > 0) throw new Fail(`${failed} job(s) failed`);
    if (completed >= n) return;
    if (exited(child)) throw new Fail(`worker exited (${child.exitCode ?? child.signalCode}) with ${completed} of ${n} jobs completed`);
    if (performance.now() > deadline) throw new Fail(`only ${completed} of ${n} jobs completed within ${deadlineS}s`);
    await sleep(POLL_MS); // poll interval, not synchronisation: the loop re-reads the counts
  }
}

async function main() {
  const usage = 'usage: node run.mjs --jobs N [--concurrency 50] [--deadline 300]';
  const { values } = parseArgs({ options: {
    jobs: { type: 'string' }, concurrency: { type: 'string', default: '50' }, deadline: { type: 'string', default: '300' } } });
  const [n, concurrency, deadlineS] = [values.jobs, values.concurrency, values.deadline].map(Number);
  if (!(Number.isInteger(n) && n > 0 && Number.isInteger(concurrency) && concurrency > 0 && deadlineS > 0)) throw new Fail(usage);

  const queueName = `bench-bullmq-${process.pid}-${Date.now()}`;
  log(`bullmq ${VERSION}, queue ${queueName}, ${n} jobs, concurrency ${concurrency}, ${REDIS_URL}`);
  const queue = new Queue(queueName, { connection: { url: REDIS_URL } });
  queue.on('error', (err) => log('queue error:', err.message));
  // Fail fast if Redis is unreachable (the client would retry for ever); nothing to clean up yet.
  const timeout = sleep(10_000, null, { ref: false }).then(() => { throw new Fail(`cannot reach Redis at ${REDIS_URL}`); });
  await Promise.race([queue.waitUntilReady(), timeout]);
  const { child, ready } = startWorker(queueName, concurrency);
  try {
    await ready;
    const opts = { removeOnComplete: false, removeOnFail: false };
    const start = Date.now(); // wall clock, comparable with finishedOn (same machine)
    for (let i = 0; i < n; i += CHUNK) {
      await queue.addBulk(Array.from({ length: Math.min(CHUNK, n - i) }, () => ({ name: 'noop', data: {}, opts })));
    }
    log(`added ${n} in ${((Date.now() - start) / 1000).toFixed(2)}s`);
    await waitForCompleted(queue, n, child, deadlineS);

    const jobs = [];
    for (let i = 0; i < n; i += PAGE) jobs.push(...(await queue.getJobs(['completed'], i, Math.min(i + PAGE, n) - 1, true)));
    if (jobs.length !== n || jobs.some((j) => !j.finishedOn)) throw new Fail(`read back ${jobs.length} completed jobs, expected ${n}`);
    const last = jobs.reduce((max, j) => Math.max(max, j.finishedOn), 0);
    const latencies = jobs.map((j) => j.finishedOn - j.timestamp).sort((a, b) => a - b);
    log(`all ${n} completed ${((last - start) / 1000).toFixed(3)}s after the first add`);
    return {
      engine: 'bullmq', version: VERSION, concurrency, jobs: n,
      jobs_per_sec: Math.round((n / ((last - start) / 1000)) * 10) / 10,
      p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99),
    };
  } finally {
    await stopWorker(child);
    await queue.obliterate({ force: true }).catch((err) => log('obliterate failed:', err));
    await queue.close();
  }
}

main().then(
  (result) => { console.log(JSON.stringify(result)); process.exit(0); },
  (err) => { log(err instanceof Fail ? err.message : err); process.exit(1); },
);
