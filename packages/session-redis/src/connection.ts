/**
 * Waiting for an ioredis client to be usable, with a bound. With the fail-fast client settings this
 * package recommends (`enableOfflineQueue: false`), a command sent while the client is still
 * connecting fails at once with "Stream isn't writeable" — right for an outage, wrong for the first
 * request after start-up, which should wait for the connection a little. So the first use waits for
 * `ready` up to a deadline (as a connection pool waits for its first connection), a lazy client
 * (`lazyConnect`) is told to connect, and after that the caller's own fail-fast rules apply.
 */
import type { RedisClient } from './key-scan';

/**
 * Resolves when `client` is `ready`, or after `timeoutMs` (the command that follows then fails with
 * the client's own error). Never rejects.
 */
export function waitForReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      client.off('end', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    timer.unref?.();
    client.on('ready', done);
    client.on('end', done);
    // `connect()` rejects when already connecting; the 'ready' event is what we wait for anyway.
    if (client.status === 'wait') client.connect().catch(() => undefined);
  });
}
