// Human units and business-time-zone dates. Pure functions, unit tested.

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/** 1536 -> "1.5 KB" (binary multiples, the unit names DBAs use). */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = u === 0 ? 0 : v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${sign}${v.toFixed(digits)} ${UNITS[u]}`;
}

/** Exact bytes with thousands separators, for the hover title. */
export function exactBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "";
  return `${formatCount(n)} bytes`;
}

const counts = new Intl.NumberFormat("en-US");
/** 1234567 -> "1,234,567" (one formatter: toLocaleString builds one per call). */
export function formatCount(n: number): string {
  return counts.format(n);
}

/** Signed growth per day: "+1.2 GB/day". */
export function formatGrowth(perDay: number | null | undefined): string {
  if (perDay === null || perDay === undefined) return "—";
  return `${perDay > 0 ? "+" : ""}${formatBytes(perDay)}/day`;
}

export function formatPercent(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return "—";
  return `${p > 0 ? "+" : ""}${p.toFixed(1)}%`;
}

/** Days until a threshold: "today", "in 1 day", "in 12 days", or "—" when not growing. */
export function formatDaysUntil(d: number | null | undefined): string {
  if (d === null || d === undefined) return "—";
  if (d <= 0) return "reached";
  return d === 1 ? "in 1 day" : `in ${formatCount(d)} days`;
}

// Building a formatter costs far more than using one: one per zone, kept.
const formats = new Map<string, Intl.DateTimeFormat>();
function timeFormat(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    formats.set(timeZone, f);
  }
  return f;
}

/** `2026-03-01T10:04:05Z` shown in the business time zone: "2026-03-01 11:04". */
export function formatTime(iso: string | null | undefined, timeZone: string): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  // en-CA writes "2026-03-01, 11:04"; format() is twice as fast as formatToParts().
  return timeFormat(timeZone).format(d).replace(", ", " ");
}

/** Milliseconds as "850 ms", "12.3 s", "4 min 5 s". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** "50 GB", "500MB", "1.5 TiB" or a plain byte count -> bytes; null when unreadable. */
export function parseBytes(s: string): number | null {
  const m = s.trim().match(/^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i);
  if (!m) return null;
  const pow = " kmgtp".indexOf(m[2].toLowerCase() || " ");
  return Math.round(parseFloat(m[1]) * 1024 ** pow);
}

/** Today's date ("YYYY-MM-DD") in a time zone. */
export function todayIn(timeZone: string, now = new Date()): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(now);
}

/** `days` days back from `end` (both included), cut into ranges of at most `max` days, oldest first. */
export function dateRanges(end: string, days: number, max = 400): [string, string][] {
  const endX = Date.parse(end + "T00:00:00Z");
  const out: [string, string][] = [];
  let hi = endX;
  let left = days;
  while (left > 0) {
    const n = Math.min(max, left);
    const lo = hi - (n - 1) * 86_400_000;
    out.unshift([new Date(lo).toISOString().slice(0, 10), new Date(hi).toISOString().slice(0, 10)]);
    hi = lo - 86_400_000;
    left -= n;
  }
  return out;
}

/** Minutes the zone is ahead of UTC at instant `ms`. */
function zoneOffsetMinutes(ms: number, timeZone: string): number {
  const shown = formatTime(new Date(ms).toISOString(), timeZone); // "YYYY-MM-DD HH:MM"
  const asUtc = Date.parse(shown.replace(" ", "T") + ":00Z");
  return Math.round((asUtc - Math.floor(ms / 60_000) * 60_000) / 60_000);
}

/** A wall-clock "YYYY-MM-DDTHH:MM" (or "YYYY-MM-DD HH:MM") in `timeZone` to an RFC 3339 instant;
 * "" for an empty value, the value itself when it is not of that form. */
export function zonedToIso(local: string, timeZone: string): string {
  const m = local.trim().match(/^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})$/);
  if (!m) return local.trim();
  const guess = Date.parse(`${m[1]}T${m[2]}:00Z`);
  // Two passes settle the offset across a DST change.
  let t = guess - zoneOffsetMinutes(guess, timeZone) * 60_000;
  t = guess - zoneOffsetMinutes(t, timeZone) * 60_000;
  return new Date(t).toISOString().replace(".000Z", "Z");
}
