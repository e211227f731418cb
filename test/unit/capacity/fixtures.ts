import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = join(__dirname, '..', '..', 'fixtures');
export const FAKE_BIN = join(FIXTURES, 'bin');

export function nvidiaSmiFixture(machine: string): { xml: string; list: string } {
  const dir = join(FIXTURES, 'nvidia-smi', machine);
  return { xml: readFileSync(join(dir, 'query.xml'), 'utf8'), list: readFileSync(join(dir, 'list.txt'), 'utf8') };
}

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
