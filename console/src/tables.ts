// Table names and shares as the Tables tab and the top-tables card show them.

/** `schema.table`, the schema left out when it is the database itself (MySQL/MariaDB). */
export function qualifiedName(t: { schema_name: string; table_name: string }, database?: string): string {
  return t.schema_name === database ? t.table_name : `${t.schema_name}.${t.table_name}`;
}

/** The part of `total` its indexes take, in whole percent; null when there is no size. */
export function indexShare(t: { total_bytes: number; index_bytes: number }): number | null {
  if (t.total_bytes <= 0) return null;
  return Math.round((t.index_bytes / t.total_bytes) * 100);
}

/** "+1.2 MB" / "-3 KB" / "—": a growth in bytes with its sign, or nothing known. */
export function signedBytes(n: number | null | undefined, format: (n: number) => string): string {
  if (n === null || n === undefined) return "—";
  if (n === 0) return "0 B";
  return `${n > 0 ? "+" : "-"}${format(Math.abs(n))}`;
}
