// Sizes and durations as the docker CLI prints them (its go-units package): decimal units
// with Go's %g precision ("4.26MB", "1e+03kB"), and "About an hour ago"-style ages.

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSizeWithPrecision: `precision` significant digits, Go's %g spelling. */
export function humanSize(bytes: number, precision = 4): string {
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < DECIMAL_UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return `${goG(v, precision)}${DECIMAL_UNITS[i]}`;
}

/**
 * Go's `%.<precision>g`: the shortest of fixed and exponent notation for that many
 * significant digits, trailing zeros dropped, a two-digit exponent (`1e+03`).
 */
export function goG(value: number, precision: number): string {
  if (value === 0) return '0';
  const [mantissa, expText] = value.toExponential(precision - 1).split('e');
  const exp = Number(expText);
  const trim = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exp < -4 || exp >= precision) {
    const sign = exp < 0 ? '-' : '+';
    return `${trim(mantissa!)}e${sign}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return trim(value.toFixed(Math.max(0, precision - 1 - exp)));
}

/** go-units HumanDuration: "Less than a second", "About a minute", "3 weeks"… */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

/** docker's CreatedSince: the age of `time` followed by " ago". */
export function since(time: Date | number, now: Date = new Date()): string {
  return `${humanDuration(now.getTime() - (typeof time === 'number' ? time : time.getTime()))} ago`;
}

/** Go's time.Time.String() in UTC, as docker images' CreatedAt: "2024-05-01 12:00:00 +0000 UTC". */
export function goTimeString(ms: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} +0000 UTC`;
}

/** RFC 3339 in UTC to the second, as docker history's CreatedAt: "2024-05-01T12:00:00Z". */
export function rfc3339(ms: number): string {
  return `${new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19)}Z`;
}
