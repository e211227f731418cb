import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileContracts } from '../../../scripts/compile-contracts';

jest.setTimeout(60_000);

describe('contract artifacts', () => {
  it('are what contracts/*.sol compile to (run `npm run compile:contracts` after editing a contract)', () => {
    for (const file of compileContracts()) {
      expect({ path: file.path, text: readFileSync(join(__dirname, '../../..', file.path), 'utf8') }).toEqual({ path: file.path, text: file.text });
    }
  });
});
