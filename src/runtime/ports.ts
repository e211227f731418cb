import { ProviderError } from '../errors';

/**
 * Picks `count` host ports from the configured range that are not in `inUse`, lowest first. The
 * capacity ledger calls it when it reserves a quote; the engine still refuses a port something
 * outside our view holds (PORT_UNAVAILABLE at start).
 */
export function pickHostPorts(range: { from: number; to: number }, inUse: Iterable<number>, count: number): number[] {
  const taken = new Set(inUse);
  const picked: number[] = [];
  for (let port = range.from; port <= range.to && picked.length < count; port += 1) {
    if (!taken.has(port)) picked.push(port);
  }
  if (picked.length < count) {
    throw new ProviderError('PORT_UNAVAILABLE', `only ${picked.length} of ${count} host ports are free in ${range.from}-${range.to}`, {
      input: count,
      fix: 'widen runtime.portRange',
    });
  }
  return picked;
}
