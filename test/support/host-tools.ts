import { execFileSync } from 'node:child_process';

/** The first of `tools` this host lacks, as a reason to print, or undefined when it has them all. */
export function missingTool(tools: readonly string[]): string | undefined {
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}
