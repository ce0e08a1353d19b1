import { describe, expect, it } from "vitest";
import { zonedToIso, dateRanges, exactBytes, formatBytes, formatDaysUntil, formatDuration, formatGrowth, formatPercent, formatTime, parseBytes, todayIn } from "./format";

describe("formatBytes", () => {
  it("uses binary multiples with 3 significant digits", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.50 KB");
    expect(formatBytes(15 * 1024 * 1024)).toBe("15.0 MB");
    expect(formatBytes(500 * 1024 ** 3)).toBe("500 GB");
    expect(formatBytes(3 * 1024 ** 5)).toBe("3.00 PB");
  });
  it("keeps the sign and shows a dash for nothing", () => {
    expect(formatBytes(-2048)).toBe("-2.00 KB");
    expect(formatBytes(null)).toBe("—");
    expect(formatBytes(undefined)).toBe("—");
  });
  it("gives the exact count for the hover", () => {
    expect(exactBytes(1234567)).toBe("1,234,567 bytes");
    expect(exactBytes(null)).toBe("");
  });
});

describe("growth, percent, days, durations", () => {
  it("signs growth", () => {
    expect(formatGrowth(1048576)).toBe("+1.00 MB/day");
    expect(formatGrowth(-1024)).toBe("-1.00 KB/day");
    expect(formatGrowth(null)).toBe("—");
  });
  it("signs percent", () => {
    expect(formatPercent(12.345)).toBe("+12.3%");
    expect(formatPercent(-3)).toBe("-3.0%");
    expect(formatPercent(Number.NaN)).toBe("—");
  });
  it("words days until", () => {
    expect(formatDaysUntil(0)).toBe("reached");
    expect(formatDaysUntil(1)).toBe("in 1 day");
    expect(formatDaysUntil(1200)).toBe("in 1,200 days");
    expect(formatDaysUntil(null)).toBe("—");
  });
  it("scales durations", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(12_340)).toBe("12.3 s");
    expect(formatDuration(245_000)).toBe("4 min 5 s");
  });
});

describe("business time zone", () => {
  it("shows instants in the given zone", () => {
    expect(formatTime("2026-03-01T23:30:00Z", "UTC")).toBe("2026-03-01 23:30");
    expect(formatTime("2026-03-01T23:30:00Z", "Asia/Shanghai")).toBe("2026-03-02 07:30");
    expect(formatTime("2026-07-01T12:00:00Z", "America/New_York")).toBe("2026-07-01 08:00");
    expect(formatTime(null, "UTC")).toBe("—");
  });
  it("knows today's date there", () => {
    const at = new Date("2026-03-01T20:00:00Z");
    expect(todayIn("UTC", at)).toBe("2026-03-01");
    expect(todayIn("Asia/Tokyo", at)).toBe("2026-03-02");
  });
});

describe("parseBytes", () => {
  it("reads units and plain numbers", () => {
    expect(parseBytes("50 GB")).toBe(50 * 1024 ** 3);
    expect(parseBytes("1.5TiB")).toBe(1.5 * 1024 ** 4);
    expect(parseBytes("500mb")).toBe(500 * 1024 ** 2);
    expect(parseBytes("1234")).toBe(1234);
    expect(parseBytes("lots")).toBeNull();
  });
});

describe("dateRanges", () => {
  it("cuts long ranges into calls of at most 400 days, oldest first", () => {
    const r = dateRanges("2026-03-01", 730);
    expect(r).toHaveLength(2);
    expect(r[1]).toEqual(["2025-01-26", "2026-03-01"]);
    expect(r[0][1]).toBe("2025-01-25");
    const days = (a: string, b: string) => (Date.parse(b) - Date.parse(a)) / 86_400_000 + 1;
    expect(days(...r[0]) + days(...r[1])).toBe(730);
  });
  it("keeps a short range whole", () => {
    expect(dateRanges("2026-03-01", 30)).toEqual([["2026-01-31", "2026-03-01"]]);
  });
});

describe("zonedToIso", () => {
  it("reads a wall-clock time in the business time zone", () => {
    expect(zonedToIso("2026-03-01T08:00", "UTC")).toBe("2026-03-01T08:00:00Z");
    expect(zonedToIso("2026-03-01 08:00", "Asia/Shanghai")).toBe("2026-03-01T00:00:00Z");
    expect(zonedToIso("2026-07-01T08:00", "America/New_York")).toBe("2026-07-01T12:00:00Z");
    expect(zonedToIso("2026-01-15T08:00", "America/New_York")).toBe("2026-01-15T13:00:00Z");
  });
  it("passes other values through", () => {
    expect(zonedToIso("", "UTC")).toBe("");
    expect(zonedToIso("2026-03-01T08:00:00Z", "Asia/Tokyo")).toBe("2026-03-01T08:00:00Z");
  });
});
