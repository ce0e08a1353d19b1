import { useState } from "preact/hooks";
import { ApiError, getFile, postText, saveFile } from "../api/client";
import type { ImportReport, ImportRow } from "../api/types";
import { DataTable } from "../list";
import { importSummary } from "../onboard";
import { Link } from "../router";
import { Badge, ErrorBox, Field } from "../ui";

/** An import's report, whether it came as a success or inside a 400's details. */
function reportOf(x: unknown): ImportReport | null {
  const d = x instanceof ApiError ? (x.details as ImportReport | undefined) : undefined;
  return d && Array.isArray(d.rows) ? d : null;
}

export function Import() {
  const [file, setFile] = useState<{ name: string; text: string } | null>(null);
  const [skip, setSkip] = useState(false);
  const [report, setReport] = useState<ImportReport | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const send = async (dryRun: boolean) => {
    if (!file) return;
    setBusy(true);
    setError(null);
    try {
      const q = `?dry_run=${dryRun}&on_error=${skip ? "skip" : "abort"}`;
      setReport(await postText<ImportReport>(`/instances/import${q}`, file.text, "text/csv"));
    } catch (x) {
      const r = reportOf(x);
      setReport(r);
      if (!r) setError(x);
    } finally {
      setBusy(false);
    }
  };
  const shown = (report?.rows ?? []).filter((r) => r.status !== "created" && r.status !== "valid");
  return (
    <>
      <h1>Import instances</h1>
      <p class="muted">
        A CSV file of up to 1,000 rows: <code>name,db_type,host,port</code> plus optional{" "}
        <code>tls_mode,credential,description,tags,exclude_databases</code> (lists separated by <code>;</code>, credential and
        tags by name). <a
          href="/api/v1/instances/import/template"
          onClick={(e) => {
            // The template needs the token: fetched, then saved (a plain link would be a 401).
            e.preventDefault();
            setError(null);
            getFile("/instances/import/template").then((b) => saveFile(b, "instances-template.csv"), setError);
          }}
        >
          Template
        </a>. Check it with a dry run first.
      </p>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <Field label="File">
          <input
            type="file"
            accept=".csv,text/csv"
            aria-label="CSV file"
            onChange={async (e) => {
              const f = (e.target as HTMLInputElement).files?.[0];
              setReport(null);
              setFile(f ? { name: f.name, text: await f.text() } : null);
            }}
          />
        </Field>
        <label>
          <input type="checkbox" checked={skip} onChange={() => setSkip(!skip)} /> write the valid rows, report the rest
        </label>
        <button disabled={!file || busy} onClick={() => send(true)}>
          Dry run
        </button>
        <button disabled={!file || busy || !report?.dry_run} onClick={() => send(false)}>
          Import
        </button>
      </form>
      <ErrorBox error={error} />
      {report && (
        <section data-testid="import-report">
          <p>
            <strong>{importSummary(report)}</strong> <Link href="/instances">Instances</Link>
          </p>
          {shown.length > 0 && (
            <DataTable<ImportRow>
              rows={shown}
              cols={[
                { label: "Line", num: true, cell: (r) => r.line },
                { label: "Name", cell: (r) => r.name },
                { label: "Status", cell: (r) => <Badge value={r.status} /> },
                { label: "Problems", cell: (r) => (r.errors ?? []).map((e) => <div>{`${e.field}: ${e.message}`}</div>) },
              ]}
            />
          )}
        </section>
      )}
    </>
  );
}
