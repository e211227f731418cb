import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** The e2e tests run the daemon as `node bin/provider`, which loads dist/: build it once. */
export default function globalSetup(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: join(__dirname, '..', '..'), stdio: 'inherit' });
}
