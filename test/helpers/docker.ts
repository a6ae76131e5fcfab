import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The image tests run containers from (built from local files by infra/ensure-test-image.sh). */
export const TEST_IMAGE = process.env.CAPSTAN_TEST_IMAGE || 'capstan-test/busybox:latest';

/** The local Docker CLI, one minute at most. */
export const docker = (...args: string[]) => run('docker', args, { timeout: 60_000 });

/** Builds the test image if it is missing (once per machine). */
export const ensureTestImage = () => run('bash', ['infra/ensure-test-image.sh']);

/** Removes every container whose name contains `fragment`, running or not; never throws. */
export async function removeContainersNamed(fragment: string): Promise<void> {
  const { stdout } = await docker('ps', '-aq', '--filter', `name=${fragment}`).catch(() => ({ stdout: '' }));
  if (stdout.trim()) await docker('rm', '-f', ...stdout.trim().split('\n')).catch(() => undefined);
}
