// End to end against the seeded local stack (scripts/console-test), after console.spec.ts: a CSV
// import with a bad row, connection checks against this machine's PostgreSQL and a closed port,
// an alert produced through the API and acknowledged in the Alerts page, and the audit trail.
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { readFileSync } from "node:fs";

const ADMIN = process.env.TIDEMARK_E2E_ADMIN ?? "admin-token-console-e2e-0001";
const OPERATOR = process.env.TIDEMARK_E2E_OPERATOR ?? "operator-token-console-e2e-01";

async function signIn(page: Page, token: string, path = "/") {
  await page.goto(path);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("navigation", { name: "main" })).toBeVisible();
}

/** An API call with a token; returns the envelope's data. */
async function api<T = unknown>(request: APIRequestContext, token: string, method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const r = await request.fetch(`/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}` },
    data: body,
  });
  expect(r.ok(), `${method} ${path}: ${r.status()} ${await r.text()}`).toBe(true);
  const j = await r.json();
  return (j.data ?? j) as T;
}

// 127.0.0.1:9 (discard) has no listener here: the check is `refused`.
const CSV = [
  "name,db_type,host,port,description",
  "e2e-imp-pg,postgresql,127.0.0.1,5432,this machine's PostgreSQL",
  "e2e-imp-closed,postgresql,127.0.0.1,9,nothing listens",
  "e2e-imp-bad,postgresql,127.0.0.1,not-a-port,bad port",
].join("\n");

test("imports a CSV with a bad row, checks connections and finds the audit entries", async ({ page }) => {
  await signIn(page, OPERATOR, "/instances");
  await page.getByRole("link", { name: "Import CSV" }).click();
  await expect(page.getByRole("heading", { name: "Import instances" })).toBeVisible();
  // The template downloads with the token (a plain link would get a 401).
  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: "Template" }).click();
  const template = readFileSync(await (await download).path(), "utf8");
  expect(template.split(/\r?\n/)[0]).toMatch(/^\uFEFF?name,db_type,host,port/);

  await page.getByLabel("CSV file").setInputFiles({ name: "fleet.csv", mimeType: "text/csv", buffer: Buffer.from(CSV) });
  await expect(page.getByRole("button", { name: "Import" })).toBeDisabled();

  // The dry run names the bad line (the header is line 1) and its field; nothing is written.
  await page.getByRole("button", { name: "Dry run" }).click();
  const report = page.getByTestId("import-report");
  await expect(report).toContainText("3 rows: 2 valid, 1 invalid (dry run: nothing written).");
  const bad = report.locator("tbody tr");
  await expect(bad).toHaveCount(1);
  await expect(bad.locator("td").nth(0)).toHaveText("4");
  await expect(bad).toContainText("e2e-imp-bad");
  await expect(bad).toContainText("port:");

  // Importing all or nothing is refused (400) with the same report, and writes nothing.
  await page.getByRole("button", { name: "Import" }).click();
  await expect(report).toContainText("3 rows: 0 created, 1 invalid (nothing written).");
  await expect(bad).toContainText("port:");
  await expect(page.getByRole("button", { name: "Import" })).toBeDisabled();

  // Write the valid rows and report the rest: the dry run again, then the import.
  await page.getByLabel("write the valid rows, report the rest").check();
  await page.getByRole("button", { name: "Dry run" }).click();
  await expect(report).toContainText("dry run: nothing written");
  await page.getByRole("button", { name: "Import" }).click();
  await expect(report).toContainText("3 rows: 2 created, 1 invalid.");
  await expect(report.locator("tbody tr")).toHaveCount(1);
  await page.screenshot({ path: "screenshots/import.png", fullPage: true });

  // The new instances are in the list; the bad row is not.
  await report.getByRole("link", { name: "Instances" }).click();
  await expect(page).toHaveURL(/\/instances$/);
  await page.goto("/instances?search=e2e-imp&sort=name");
  const table = page.getByTestId("instances-table");
  await expect(table.locator("tbody tr")).toHaveCount(2);
  const pg = table.locator("tbody tr", { hasText: "e2e-imp-pg" });
  const closed = table.locator("tbody tr", { hasText: "e2e-imp-closed" });
  await expect(pg).toContainText("127.0.0.1:5432");
  await expect(closed).toContainText("127.0.0.1:9");

  // One instance at a time: ok with the server's version, then refused; the column shows each.
  await pg.getByRole("button", { name: "Check", exact: true }).click();
  await expect(page.getByRole("status")).toContainText(/e2e-imp-pg: ok \(\d+\.\d+/);
  await expect(pg.locator(".badge.b-ok")).toHaveText("ok");
  await closed.getByRole("button", { name: "Check", exact: true }).click();
  await expect(page.getByRole("status")).toContainText("e2e-imp-closed: refused");
  await expect(closed.locator(".badge.b-refused")).toHaveText("refused");

  // A selection: both checked in one call.
  await page.getByLabel("Select e2e-imp-pg").check();
  await page.getByLabel("Select e2e-imp-closed").check();
  const bulk = page.getByRole("region", { name: "bulk actions" });
  await bulk.getByRole("button", { name: "Check connection" }).click();
  await expect(bulk).toContainText("Checked 2: 1 ok, 1 failed.");
  await bulk.getByRole("button", { name: "Clear selection" }).click();

  // The last-check filter.
  await page.getByLabel("Last check").selectOption("refused");
  await expect(page).toHaveURL(/check_status=refused/);
  await expect(table.locator("tbody tr")).toHaveCount(1);
  await expect(table.locator("tbody tr")).toContainText("e2e-imp-closed");
  await page.getByLabel("Last check").selectOption("ok");
  await expect(table.locator("tbody tr")).toHaveCount(1);
  await expect(table.locator("tbody tr")).toContainText("e2e-imp-pg");

  // An edit, then its audit entry: who, the action, the changed fields.
  const href = await table.getByRole("link", { name: "e2e-imp-pg" }).getAttribute("href");
  const id = href?.match(/\/instances\/(\d+)/)?.[1];
  expect(id).toBeTruthy();
  await table.locator("tbody tr").getByRole("button", { name: "Edit" }).click();
  const edit = page.getByRole("form", { name: "Edit instance" });
  await edit.getByLabel("Description").fill("audited by e2e");
  await edit.getByRole("button", { name: "Save" }).click();
  await expect(page.getByRole("status")).toContainText("Saved e2e-imp-pg");

  // The audit trail is the admin's to read.
  await page.evaluate(() => sessionStorage.clear());
  await signIn(page, ADMIN, `/logs?module=audit&target_id=${id}`);
  const entries = page.getByRole("table").locator("tbody tr");
  const patch = entries.filter({ hasText: "PATCH /instances/{id}" });
  await expect(patch).toHaveCount(1);
  await expect(patch).toContainText("(operator)");
  await expect(patch).toContainText("description: this machine's PostgreSQL → audited by e2e");
  // The import (not its dry runs) is one entry for the whole file.
  await page.goto("/logs?module=audit&action=instances%2Fimport");
  await expect(page.getByRole("table").locator("tbody tr")).toHaveCount(1);
  await expect(page.getByRole("table").locator("tbody tr")).toContainText("(operator)");
  await expect(page.getByRole("table").locator("tbody tr")).toContainText("POST /instances/import (2 instances)");
  await page.screenshot({ path: "screenshots/audit.png", fullPage: true });
});

test("an alert fired by the day's evaluation is listed, filtered and acknowledged", async ({ page, request }) => {
  // Through the API: a growth rule on pg-billing's "orders" (seeded to grow 1.5 MiB a day), then
  // today's aggregation, which evaluates the rules when it finishes.
  const billing = (await api<{ items: { id: number }[] }>(request, ADMIN, "GET", "/instances?search=pg-billing")).items[0].id;
  await api(request, ADMIN, "POST", "/alert-rules", {
    name: "e2e-orders-weekly",
    severity: "warning",
    scope: "database",
    instance_id: billing,
    database_name: "orders",
    condition: "growth",
    period: "week",
    min_bytes: 1048576,
  });
  const run = await api<{ run_id: string }>(request, OPERATOR, "POST", "/capacity/aggregations", {});
  await expect
    .poll(async () => (await api<{ status: string }>(request, ADMIN, "GET", `/task-runs/${run.run_id}`)).status, { timeout: 45_000 })
    .toMatch(/^completed/);

  await signIn(page, OPERATOR, "/alerts");
  await expect(page.getByRole("heading", { name: "Alerts" })).toBeVisible();
  const rows = page.getByRole("table").locator("tbody tr");
  const alert = rows.filter({ hasText: "e2e-orders-weekly" });
  await expect(alert).toHaveCount(1);
  await expect(alert).toContainText("pg-billing/orders");
  await expect(alert).toContainText(/grew \d/);
  await expect(alert.locator(".badge.b-firing")).toBeVisible();

  // Filters: severity critical hides it, warning and state firing keep it.
  await page.getByLabel("Severity").selectOption("critical");
  await expect(page).toHaveURL(/severity=critical/);
  await expect(alert).toHaveCount(0);
  await page.getByLabel("Severity").selectOption("warning");
  await page.getByLabel("State").selectOption("firing");
  await expect(alert).toHaveCount(1);
  await page.screenshot({ path: "screenshots/alerts.png", fullPage: true });

  await alert.getByRole("button", { name: "Acknowledge" }).click();
  await expect(page.getByRole("status")).toContainText("Alert acknowledged.");
  await expect(alert).toHaveCount(0);
  await page.getByLabel("State").selectOption("acknowledged");
  await expect(alert).toHaveCount(1);
  await expect(alert.locator(".badge.b-acknowledged")).toBeVisible();
  await expect(alert).toContainText("by ");
  await expect(alert.getByRole("button", { name: "Acknowledge" })).toHaveCount(0);
});
