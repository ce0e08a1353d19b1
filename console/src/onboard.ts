// Pure helpers of the onboarding and audit pages: an import report's problems in words, a
// change set as lines, a check's result in words.
import type { Changes, CheckResult, ImportReport } from "./api/types";

/** One line per invalid row and field: `line 101, port: port must be an integer`. */
export function rowProblems(report: ImportReport): string[] {
  return report.rows.flatMap((r) => (r.errors ?? []).map((e) => `line ${r.line}, ${e.field}: ${e.message}`));
}

/** What an import did or would do, in one sentence. */
export function importSummary(report: ImportReport): string {
  const s = report.summary;
  const parts = [
    report.dry_run ? `${s.valid} valid` : `${s.created} created`,
    s.skipped ? `${s.skipped} skipped (name exists)` : "",
    s.invalid ? `${s.invalid} invalid` : "",
  ].filter(Boolean);
  const tail = report.dry_run ? " (dry run: nothing written)" : report.written ? "" : " (nothing written)";
  return `${s.rows} rows: ${parts.join(", ")}${tail}.`;
}

const show = (v: unknown) => (v === null || v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v));

/** `port: 5432 → 6432`; a write-only field as `password: changed`. */
export function changeLines(changes: Changes | null | undefined): string[] {
  return Object.entries(changes ?? {}).map(([field, c]) =>
    c === "changed" ? `${field}: changed` : `${field}: ${show(c.old)} → ${show(c.new)}`,
  );
}

/** `ok (16.2 (Debian 16.2-1), 12 ms)` (the server's version string) or `refused: could not connect ... (3 ms)`. */
export function checkText(r: CheckResult): string {
  return r.ok
    ? `ok (${r.version ?? "version unknown"}, ${r.duration_ms} ms)`
    : `${r.status}: ${r.message ?? "failed"} (${r.duration_ms} ms)`;
}
