// Chart math: daily points to weekly/monthly averages, and a linear forecast to a threshold.
// Dates are business dates ("YYYY-MM-DD"); x values are seconds since the epoch at 00:00 UTC.

export interface Point {
  date: string;
  bytes: number;
}

export const DAY = 86_400;

export function dateToX(date: string): number {
  return Date.UTC(+date.slice(0, 4), +date.slice(5, 7) - 1, +date.slice(8, 10)) / 1000;
}
export function xToDate(x: number): string {
  return new Date(x * 1000).toISOString().slice(0, 10);
}

/** Monday of the week of `x` (1970-01-01 was a Thursday: day 0 is weekday 3 from Monday). */
export function weekStartX(x: number): number {
  const day = Math.floor(x / DAY);
  return (day - ((day + 3) % 7)) * DAY;
}
/** The Monday of a date's week (weeks start on Monday, as the API's periods do). */
export function weekStart(date: string): string {
  return xToDate(weekStartX(dateToX(date)));
}
export function monthStart(date: string): string {
  return date.slice(0, 8) + "01";
}

/** Average per period; each average is placed on every day of its period that has a point,
 * so the line is a step aligned with the daily series. `keys[i]` names point i's period. */
export function aggregateBy(points: Point[], keys: (string | number)[]): (number | null)[] {
  const sums = new Map<string | number, { sum: number; n: number }>();
  points.forEach((p, i) => {
    const s = sums.get(keys[i]);
    if (s) {
      s.sum += p.bytes;
      s.n += 1;
    } else sums.set(keys[i], { sum: p.bytes, n: 1 });
  });
  return keys.map((k) => {
    const s = sums.get(k)!;
    return Math.round(s.sum / s.n);
  });
}

export function aggregate(points: Point[], periodOf: (d: string) => string): (number | null)[] {
  return aggregateBy(points, points.map((p) => periodOf(p.date)));
}

/** Least-squares slope (bytes/day) and intercept over the last `window` days of points. */
export function regression(points: Point[], window = 30): { slope: number; intercept: number; x0: number } | null {
  if (points.length < 2) return null;
  const last = dateToX(points[points.length - 1].date);
  const recent = points.filter((p) => dateToX(p.date) > last - window * DAY);
  if (recent.length < 2) return null;
  const xs = recent.map((p) => (dateToX(p.date) - last) / DAY);
  const ys = recent.map((p) => p.bytes);
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  if (den === 0) return null;
  const slope = num / den;
  return { slope, intercept: my - slope * mx, x0: last };
}

/** Days after the last point until the fitted line reaches `threshold`: 0 when already
 * there, null when not growing. */
export function daysToThreshold(points: Point[], threshold: number, window = 30): number | null {
  if (points.length === 0) return null;
  const lastBytes = points[points.length - 1].bytes;
  if (lastBytes >= threshold) return 0;
  const r = regression(points, window);
  if (!r || r.slope <= 0) return null;
  return Math.max(0, Math.ceil((threshold - r.intercept) / r.slope));
}

export interface ChartData {
  xs: number[];
  daily: (number | null)[];
  weekly: (number | null)[];
  monthly: (number | null)[];
  forecast: (number | null)[];
  days: number | null;
}

/** Everything the database chart draws: the daily series, both aggregate lines and the
 * forecast from the last point to the threshold (capped at `horizon` days). */
export function chartData(points: Point[], threshold: number | null, horizon = 365): ChartData {
  const xs = points.map((p) => dateToX(p.date));
  const daily: (number | null)[] = points.map((p) => p.bytes);
  // Period keys from numbers and slices: no Date object per point.
  const weekly = aggregateBy(points, xs.map(weekStartX));
  const monthly = aggregateBy(points, points.map((p) => p.date.slice(0, 7)));
  const forecast: (number | null)[] = points.map(() => null);
  let days: number | null = null;
  const r = regression(points);
  if (r && points.length > 0) {
    const lastBytes = points[points.length - 1].bytes;
    days = threshold === null ? null : daysToThreshold(points, threshold);
    const span = Math.min(horizon, days ?? 90);
    forecast[forecast.length - 1] = lastBytes;
    if (span > 0 && r.slope !== 0) {
      const step = Math.max(1, Math.ceil(span / 30));
      for (let d = step; d <= span; d += step) {
        xs.push(r.x0 + d * DAY);
        daily.push(null);
        weekly.push(null);
        monthly.push(null);
        forecast.push(Math.round(r.intercept + r.slope * d));
      }
      if (span % step !== 0) {
        xs.push(r.x0 + span * DAY);
        daily.push(null);
        weekly.push(null);
        monthly.push(null);
        forecast.push(Math.round(r.intercept + r.slope * span));
      }
    }
  }
  return { xs, daily, weekly, monthly, forecast, days };
}
