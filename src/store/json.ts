/**
 * JSON with bigints: amounts and 256-bit values outlive a round trip through a JSON column as
 * tagged decimal strings (SQLite integers are 64-bit, JSON numbers are doubles).
 */

const BIG = '$big:';

export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${BIG}${v.toString()}` : v));
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => (typeof v === 'string' && v.startsWith(BIG) ? BigInt(v.slice(BIG.length)) : v)) as T;
}
