/**
 * Does a live object already carry everything we would apply? Used to skip
 * writes: a child is applied only when its rendering changed (hash annotation)
 * or someone changed a field we set (drift). Fields the API server or other
 * controllers add are ignored; values the server normalizes (quantities) are
 * compared by meaning.
 */

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([KMGTPE]i)|([numkMGTPE])|[eE]([+-]?\d+))?$/;
const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** The numeric value of a Kubernetes quantity ("500m", "1Gi", "1e3"), or undefined if it is not one. */
export function quantityValue(text: string): number | undefined {
  const match = QUANTITY.exec(text);
  if (!match?.[1]) return undefined;
  const [, number, binary, decimal, exponent] = match;
  const base = Number(number);
  if (binary) return base * (BINARY[binary] ?? NaN);
  if (decimal) return base * (DECIMAL[decimal] ?? NaN);
  if (exponent) return base * 10 ** Number(exponent);
  return base;
}

function sameScalar(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (typeof desired === 'string' && typeof live === 'string') {
    const a = quantityValue(desired);
    const b = quantityValue(live);
    return a !== undefined && b !== undefined && Math.abs(a - b) <= Math.abs(a) * 1e-9;
  }
  return false;
}

const isEmpty = (value: unknown): boolean =>
  value === undefined || value === null || (Array.isArray(value) && value.length === 0);

/** True when every field of `desired` is present in `live` with the same value; lists match element by element. */
export function containsDesired(desired: unknown, live: unknown): boolean {
  if (Array.isArray(desired)) {
    if (desired.length === 0) return isEmpty(live);
    return (
      Array.isArray(live) &&
      live.length === desired.length &&
      desired.every((item, index) => containsDesired(item, live[index]))
    );
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    const liveRecord = live as Record<string, unknown>;
    return Object.entries(desired).every(([key, value]) => containsDesired(value, liveRecord[key]));
  }
  return sameScalar(desired, live);
}
