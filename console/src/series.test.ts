import { describe, expect, it } from "vitest";
import { aggregate, chartData, daysToThreshold, monthStart, regression, weekStart, type Point } from "./series";

function linear(days: number, start: number, perDay: number, end = "2026-03-31"): Point[] {
  const endX = Date.parse(end + "T00:00:00Z");
  return Array.from({ length: days }, (_, i) => ({
    date: new Date(endX - (days - 1 - i) * 86_400_000).toISOString().slice(0, 10),
    bytes: start + i * perDay,
  }));
}

describe("periods", () => {
  it("starts weeks on Monday and months on the 1st", () => {
    expect(weekStart("2026-03-01")).toBe("2026-02-23"); // a Sunday
    expect(weekStart("2026-03-02")).toBe("2026-03-02"); // a Monday
    expect(monthStart("2026-03-17")).toBe("2026-03-01");
  });
  it("averages each period and repeats it over its days", () => {
    const pts = [
      { date: "2026-03-01", bytes: 10 }, // week of 02-23
      { date: "2026-03-02", bytes: 20 },
      { date: "2026-03-03", bytes: 40 },
    ];
    expect(aggregate(pts, weekStart)).toEqual([10, 30, 30]);
    expect(aggregate(pts, monthStart)).toEqual([23, 23, 23]);
  });
});

describe("forecast", () => {
  it("fits the slope of the last 30 days", () => {
    const r = regression(linear(60, 1000, 100))!;
    expect(r.slope).toBeCloseTo(100, 6);
    expect(r.intercept).toBeCloseTo(1000 + 59 * 100, 6);
  });
  it("counts the days to a threshold from the last point", () => {
    const pts = linear(30, 1000, 100); // last = 3900
    expect(daysToThreshold(pts, 4900)).toBe(10);
    expect(daysToThreshold(pts, 3900)).toBe(0);
    expect(daysToThreshold(linear(30, 1000, -5), 5000)).toBeNull();
    expect(daysToThreshold([], 10)).toBeNull();
  });
  it("extends the x axis with the projected line up to the threshold", () => {
    const pts = linear(730, 1000, 10);
    const cd = chartData(pts, 1000 + 729 * 10 + 500);
    expect(cd.days).toBe(50);
    expect(cd.daily.filter((v) => v !== null)).toHaveLength(730);
    expect(cd.xs.length).toBe(cd.forecast.length);
    expect(cd.xs.length).toBe(cd.weekly.length);
    expect(cd.forecast[729]).toBe(1000 + 729 * 10);
    expect(cd.forecast[cd.forecast.length - 1]).toBe(1000 + 729 * 10 + 500);
    // x values only go forward.
    for (let i = 1; i < cd.xs.length; i++) expect(cd.xs[i]).toBeGreaterThan(cd.xs[i - 1]);
  });
});
