import { describe, expect, it } from "vitest";
import { alertTarget, describeAlert } from "./alerts";

const GIB = 1024 ** 3;

describe("describeAlert", () => {
  it("says when a database reaches its threshold", () => {
    const a = { condition: "days_until_threshold" as const, value: 9, details: { size_bytes: 41 * GIB, threshold_bytes: 50 * GIB } };
    expect(describeAlert(a)).toBe("41.0 GB reaches 50.0 GB in 9 day(s)");
  });
  it("gives the growth with its percent when there is one", () => {
    const a = { condition: "growth" as const, value: 7 * GIB, details: { growth_bytes: 7 * GIB, growth_percent: 20.59, size_bytes: 41 * GIB } };
    expect(describeAlert(a)).toBe("grew 7.00 GB (20.59%) to 41.0 GB");
    expect(describeAlert({ ...a, details: { growth_bytes: 7 * GIB, size_bytes: 41 * GIB } })).toBe("grew 7.00 GB to 41.0 GB");
  });
  it("puts an abnormal day against its median", () => {
    const a = { condition: "abnormal_day" as const, value: 4096.04, details: { day_growth_bytes: 2 * GIB, median_growth_bytes: 10.5 * 1024 ** 2 } };
    expect(describeAlert(a)).toBe("grew 2.00 GB in a day; 30-day median 10.5 MB, 4096.0 MADs away");
  });
  it("counts the days without a collection, and names the target", () => {
    expect(describeAlert({ condition: "collection_failing", value: 3, details: {} })).toBe("not collected for 3 day(s)");
    expect(alertTarget({ instance_name: "quiet", database_name: "" })).toBe("quiet");
    expect(alertTarget({ instance_name: "hot", database_name: "filling" })).toBe("hot/filling");
  });
});
