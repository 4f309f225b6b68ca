// Where this machine's real services are, and whether a test may use them: MYSQL_URL and REDIS_URL
// (defaults: the local MariaDB and Redis). An unreachable service skips the tests that need it with
// one line, except under CI=true, where it is a failure.
import { connect } from 'node:net';

export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const IN_CI = process.env.CI === 'true';

/** True when something accepts TCP connections at the URL's host and port (1 s at most). */
export function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const timer = setTimeout(() => socket.destroy(), 1000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    socket.once('close', () => resolve(false));
  });
}

/** Whether to skip: false when available; else one warning line — or, under CI=true, a throw. */
export function skipUnless(available: boolean, url: string, what: string): boolean {
  if (available) return false;
  const message = `${url} unreachable: skipping ${what}`;
  if (IN_CI) throw new Error(`${message} is not allowed under CI=true`);
  console.warn(message);
  return true;
}
