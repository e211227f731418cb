/**
 * Whether a lease's rules in an `iptables -S` listing are still what `script` (its applyScript)
 * installed: both chains declared and holding as many rules as the script gives them, and every
 * jump the script inserts present. Counting rules rather than comparing their text: iptables
 * prints a rule in its own order and spelling, and any tool that touched a chain (a flush, a
 * delete, an insert) changes its count.
 */
export function rulesBroken(listing: string, script: string, chains: { forward: string; input: string }, bridge: string): boolean {
  const listed = listing.split('\n');
  const lines = script.split('\n');
  for (const chain of [chains.forward, chains.input]) {
    if (!listed.includes(`-N ${chain}`)) return true;
    const want = lines.filter((l) => l.startsWith(`-A ${chain} `)).length;
    const have = listed.filter((l) => l.startsWith(`-A ${chain} `)).length;
    if (want !== have) return true;
  }
  for (const jump of lines) {
    const m = /^-I (\S+) 1 -i \S+ -j (\S+) /.exec(jump);
    if (!m) continue;
    const [, parent, chain] = m;
    const present = listed.some((l) => l.startsWith(`-A ${parent} `) && l.includes(` -i ${bridge} `) && (l.endsWith(` -j ${chain}`) || l.includes(` -j ${chain} `)));
    if (!present) return true;
  }
  return false;
}

/**
 * The iptables-restore input that puts Docker's `FORWARD -j DOCKER-USER` hook back first in
 * FORWARD (where dockerd keeps it), or undefined when it is there. Without it every lease's
 * forward chain is skipped: `iptables -F FORWARD` by another tool leaves leases unfiltered on a
 * host whose FORWARD policy is ACCEPT.
 */
export function forwardHookScript(listing: string): string | undefined {
  const listed = listing.split('\n');
  const hasChain = listed.includes('-N DOCKER-USER');
  const forward = listed.filter((l) => l.startsWith('-A FORWARD '));
  if (hasChain && forward[0] === '-A FORWARD -j DOCKER-USER') return undefined;
  const lines = ['*filter'];
  if (!hasChain) lines.push(':DOCKER-USER - [0:0]');
  for (const line of forward) if (line === '-A FORWARD -j DOCKER-USER') lines.push('-D FORWARD -j DOCKER-USER');
  lines.push('-I FORWARD 1 -j DOCKER-USER', 'COMMIT', '');
  return lines.join('\n');
}
