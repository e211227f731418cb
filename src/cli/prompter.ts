import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';

/** Questions to a person at a terminal; injected so tests can answer them. */
export interface Prompter {
  /** Returns the answer, or `fallback` for an empty answer. */
  ask(question: string, fallback?: string): Promise<string>;
  /** Like ask, without echoing what is typed. */
  askSecret(question: string): Promise<string>;
  close(): void;
}

/** Reads answers from a terminal. Secrets are read with echo muted. */
export class TerminalPrompter implements Prompter {
  private muted = false;
  private readonly rl;

  constructor(input: NodeJS.ReadableStream, private readonly output: NodeJS.WritableStream) {
    const echo = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        if (!this.muted) output.write(chunk);
        done();
      },
    });
    this.rl = createInterface({ input, output: echo, terminal: true });
  }

  async ask(question: string, fallback?: string): Promise<string> {
    const suffix = fallback === undefined || fallback === '' ? '' : ` [${fallback}]`;
    const answer = (await this.rl.question(`${question}${suffix}: `)).trim();
    return answer === '' ? (fallback ?? '') : answer;
  }

  async askSecret(question: string): Promise<string> {
    this.output.write(`${question}: `);
    this.muted = true;
    try {
      return await this.rl.question('');
    } finally {
      this.muted = false;
      this.output.write('\n');
    }
  }

  close(): void {
    this.rl.close();
  }
}
