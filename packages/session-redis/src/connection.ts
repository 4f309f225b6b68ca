/**
 * Waiting for an ioredis client to be usable, with a bound. With the fail-fast client settings this
 * package recommends (`enableOfflineQueue: false`), a command sent while the client is still
 * connecting fails at once with "Stream isn't writeable" — right for an outage, wrong for the first
 * request after start-up, which should wait for the connection a little. So the first use waits for
 * `ready` up to a deadline (as a connection pool waits for its first connection), a lazy client
 * (`lazyConnect`) is told to connect, and after that the caller's own fail-fast rules apply.
 */
import type { RedisClient } from './key-scan';

/** One pending wait per client: the listeners are attached once, whatever the number of callers. */
const pending = new WeakMap<RedisClient, Promise<void>>();

/**
 * Resolves when `client` is `ready`, or after `timeoutMs` (the command that follows then fails with
 * the client's own error). Never rejects.
 *
 * Every caller waiting on the same client shares one promise and one pair of listeners: twenty
 * requests arriving before the first connection must not add forty listeners to the client (Node
 * warns past ten, `MaxListenersExceededWarning`, and each listener is work on every event). The
 * deadline is the first waiter's; later waiters join it.
 */
export function waitForReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.resolve();
  const shared = pending.get(client);
  if (shared !== undefined) return shared;
  const wait = new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      client.off('end', done);
      pending.delete(client);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    timer.unref?.();
    client.on('ready', done);
    client.on('end', done);
    // `connect()` rejects when already connecting; the 'ready' event is what we wait for anyway.
    if (client.status === 'wait') client.connect().catch(() => undefined);
  });
  pending.set(client, wait);
  return wait;
}
