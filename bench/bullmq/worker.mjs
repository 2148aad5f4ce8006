// BullMQ worker for run.mjs, run in its own process (forked with an IPC channel):
//   node worker.mjs <queue> <concurrency>      (REDIS_URL from the environment)
// Runs a no-op processor, sends {ready: true} to the parent once the worker's connection is up,
// and closes gracefully (worker.close() lets active jobs finish) on SIGTERM or if the parent goes away.
import { Worker } from 'bullmq';

const [queueName, concurrency] = process.argv.slice(2);
const connection = { url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' };

const worker = new Worker(queueName, async () => null, { connection, concurrency: Number(concurrency) });
worker.on('error', (err) => console.error('worker error:', err.message));
worker.once('ready', () => process.send({ ready: true }));

let closing = false;
async function shutdown() {
  if (closing) return;
  closing = true;
  await worker.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('disconnect', shutdown);
