// Shapes of the responses the contract leaves open (lists are `items: object[]` there); the
// query parameters come from the generated schema (QueryOf), so they cannot drift.
import type { components } from "./schema";

export type Me = components["schemas"]["Me"];
export type Role = Me["role"];
export type FleetSummary = components["schemas"]["FleetSummary"];
export type Grower = components["schemas"]["Grower"];

export interface TagRef {
  id?: number;
  name: string;
  display_name: string;
  category?: string;
}
export interface Instance {
  id: number;
  name: string;
  db_type: string;
  host: string;
  port: number;
  database_name: string | null;
  description: string | null;
  is_active: boolean;
  status: "active" | "inactive" | "deleted";
  exclude_databases: string[];
  version: string | null;
  last_collected_at: string | null;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  credential: { id: number; name: string; username: string } | null;
  tags: TagRef[];
  last_check?: { status: CheckStatus; message: string | null; checked_at: string; duration_ms: number } | null;
  totals?: { total_size_bytes: number; database_count: number; collected_date: string; collected_at: string } | null;
}
export interface Size {
  bytes: number;
  label: string;
  collected_at: string | null;
  collected_date: string | null;
}
export interface LedgerItem {
  id: number;
  database_name: string;
  db_type: string;
  instance: { id: number; name: string; host: string; port: number };
  size: Size | null;
  growth: { bytes_per_day: number | null; days_until: number | null };
  sync_status: "never" | "fresh" | "due" | "stale";
  tags: TagRef[];
}
export interface InstanceDatabase {
  id: number;
  database_name: string;
  is_active: boolean;
  size: Size | null;
  growth_bytes_per_day: number | null;
  last_seen_date: string;
}
export interface SizePoint {
  collected_date: string;
  size_bytes: number;
}
export interface DatabaseSizes {
  id: number;
  database_name: string;
  db_type: string;
  instance: { id: number; name: string; host: string; port: number };
  start_date: string;
  end_date: string;
  items: SizePoint[];
}
export interface Aggregation {
  instance: { id: number; name: string };
  database_name?: string;
  period_type: string;
  period_start: string;
  period_end: string;
  avg_bytes: number;
  max_bytes: number;
  min_bytes: number;
  change_bytes: number;
  change_percent: number;
  trend: "growing" | "shrinking" | "stable";
}
export type RunStatus = "pending" | "running" | "completed" | "completed_with_errors" | "failed" | "cancelled";
export interface TaskRun {
  run_id: string;
  task_key: string;
  trigger: string;
  status: RunStatus;
  started_at: string;
  completed_at: string | null;
  duration_ms: number;
  items_total: number;
  items_succeeded: number;
  items_failed: number;
  error: string | null;
  progress?: { percent: number; items: Record<string, number> };
}
export interface RunItem {
  item_key: string;
  instance_id: number | null;
  instance_name: string | null;
  status: string;
  started_at: string | null;
  duration_ms: number | null;
  error: string | null;
}
export interface ExportJob {
  id: string;
  kind: string;
  status: "queued" | "running" | "completed" | "failed";
  file_name: string | null;
  rows_written: number;
  bytes_written: number;
  created_at: string;
  completed_at: string | null;
  error: string | null;
  download_url: string | null;
}
export interface LogEntry {
  id: number;
  occurred_at: string;
  level: string;
  module: string;
  message: string;
  context: unknown;
  /** Audit entries only. */
  actor?: string | null;
  actor_role?: string | null;
  action?: string | null;
  target_type?: string | null;
  target_ids?: string[];
  request_id?: string | null;
  changes?: Changes | null;
}
/** `{field: {old, new}}`, or `"changed"` for a write-only field. */
export type Changes = Record<string, { old: unknown; new: unknown } | "changed">;
export type CheckStatus = "ok" | "dns" | "refused" | "timeout" | "tls" | "auth" | "permission" | "other";
export interface CheckResult {
  ok: boolean;
  status: CheckStatus;
  message: string | null;
  version: string | null;
  duration_ms: number;
  instance_id?: number;
  name?: string;
}
export interface ImportRow {
  line: number;
  name: string;
  status: "created" | "valid" | "skipped" | "invalid";
  id?: number;
  errors?: { field: string; message: string }[];
}
export interface ImportReport {
  dry_run: boolean;
  on_error: "abort" | "skip";
  written: boolean;
  summary: { rows: number; created: number; valid: number; skipped: number; invalid: number };
  statements: number;
  rows: ImportRow[];
}
export interface Tag {
  id: number;
  name: string;
  display_name: string;
  category: string;
  is_active: boolean;
  instance_count?: number;
}
export interface Credential {
  id: number;
  name: string;
  username: string;
}
export type AlertCondition = "days_until_threshold" | "growth" | "abnormal_day" | "collection_failing";
export interface Alert {
  id: number;
  rule_id: number;
  rule_name: string;
  condition: AlertCondition;
  severity: "info" | "warning" | "critical";
  state: "firing" | "acknowledged";
  instance_id: number;
  instance_name: string;
  database_name: string;
  day: string;
  value: number | null;
  details: Record<string, number | string | null>;
  acknowledged_by: string | null;
  acknowledged_at: string | null;
  created_at: string;
}

/** One table's latest size (`GET /databases/{id}/tables`). */
export interface TableRow {
  id: number;
  schema_name: string;
  table_name: string;
  kind: "table" | "partitioned" | "partition";
  parent_name: string | null;
  engine: string | null;
  is_active: boolean;
  total_bytes: number;
  data_bytes: number;
  index_bytes: number;
  toast_bytes: number | null;
  free_bytes: number | null;
  row_estimate: number | null;
  growth_7d_bytes: number | null;
  growth_30d_bytes: number | null;
  has_history: boolean;
  collected_at: string;
}
/** One of the fleet's top tables (`GET /tables/top`). */
export interface TopTable {
  id: number;
  instance_id: number;
  instance_name: string;
  db_type: string;
  database_id: number | null;
  database_name: string;
  schema_name: string;
  table_name: string;
  kind: string;
  total_bytes: number;
  growth_7d_bytes: number | null;
  growth_30d_bytes: number | null;
}
