// Finds Debian's Chromium for the browser tests (stats page, simulator report). Under CI=true a missing browser is a failure;
// elsewhere the tests skip with one line saying why.
import { accessSync, constants } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium binary (CHROMIUM_PATH, else the usual Debian paths), or undefined. */
export const chromiumPath: string | undefined = [process.env.CHROMIUM_PATH, ...CANDIDATES].find(
  (path): path is string => path !== undefined && path !== '' && executable(path),
);

export const requireChromium = process.env.CI === 'true';

if (chromiumPath === undefined && !requireChromium) {
  console.warn('skipping browser tests: no Chromium at CHROMIUM_PATH or /usr/bin/chromium (apt-get install chromium)');
}

/** Flags for a quiet, sandbox-less headless run on a CI box (no network besides loopback). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
