// The example as a user runs it: `node run.mjs` in its own process, importing @fulcrum/grpc from its
// built dist (`pnpm test` builds first). Its checks print ok/FAIL and set the exit code.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

it('runs the gRPC example with every check passing', async () => {
  const run = fileURLToPath(new URL('./run.mjs', import.meta.url));
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = execFile(process.execPath, [run, '--calls', '150'], { cwd: fileURLToPath(new URL('.', import.meta.url)) }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
    child.stdin?.end();
  });
  expect(output).not.toMatch(/FAIL/);
  expect(output).toMatch(/ok {3}a NOT_SERVING server receives no call/);
  expect(code, output).toBe(0);
});
