import { describe, expect, it } from "vitest";
import type { ImportReport } from "./api/types";
import { changeLines, checkText, importSummary, rowProblems } from "./onboard";

const report: ImportReport = {
  dry_run: false,
  on_error: "abort",
  written: false,
  summary: { rows: 4, created: 0, valid: 2, skipped: 1, invalid: 1 },
  statements: 7,
  rows: [
    { line: 2, name: "a", status: "valid" },
    { line: 3, name: "b", status: "skipped", id: 9 },
    { line: 4, name: "c", status: "invalid", errors: [{ field: "port", message: "port must be an integer" }, { field: "host", message: "bad" }] },
    { line: 5, name: "d", status: "valid" },
  ],
};

describe("onboarding helpers", () => {
  it("names each invalid line and field", () => {
    expect(rowProblems(report)).toEqual(["line 4, port: port must be an integer", "line 4, host: bad"]);
  });
  it("summarises what was written", () => {
    expect(importSummary(report)).toBe("4 rows: 0 created, 1 skipped (name exists), 1 invalid (nothing written).");
    expect(importSummary({ ...report, dry_run: true })).toBe("4 rows: 2 valid, 1 skipped (name exists), 1 invalid (dry run: nothing written).");
  });
  it("shows changes without secret values", () => {
    expect(changeLines({ port: { old: 5432, new: 6432 }, description: { old: null, new: "x" }, password: "changed" })).toEqual([
      "port: 5432 → 6432",
      "description: — → x",
      "password: changed",
    ]);
    expect(changeLines(null)).toEqual([]);
  });
  it("describes a check", () => {
    expect(checkText({ ok: true, status: "ok", message: null, version: "16.2", duration_ms: 12 })).toBe("ok (16.2, 12 ms)");
    expect(checkText({ ok: false, status: "auth", message: "password authentication failed", version: null, duration_ms: 3 })).toBe(
      "auth: password authentication failed (3 ms)",
    );
  });
});
