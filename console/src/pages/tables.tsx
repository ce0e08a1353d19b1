// Table-level capacity: the Tables tab of a database page and the overview's top-tables card.
import { get } from "../api/client";
import type { TableRow, TopTable } from "../api/types";
import { formatBytes } from "../format";
import { DataTable, FilterBar, FilterSearch, PagedList, usePagedList } from "../list";
import { Link } from "../router";
import { indexShare, qualifiedName, signedBytes } from "../tables";
import { Bytes, States, useLoad } from "../ui";

/** Every table of one database, largest first; sortable, filtered by schema and name. */
export function DatabaseTables({ id, database }: { id: string; database: string }) {
  const list = usePagedList<TableRow>(`/databases/${id}/tables`);
  const sortParams = { sort: "total", ...list.params };
  return (
    <>
      <FilterBar at={list} selects={[]}>
        <FilterSearch label="Schema" k="schema" at={list} />
        <FilterSearch label="Table" k="name" at={list} />
      </FilterBar>
      <PagedList
        list={list}
        emptyText="No tables read yet: turn on collect_tables for the instance or refresh this database's tables."
        testid="tables-table"
        sortParams={sortParams}
        cols={[
          {
            label: "Table",
            sort: "name",
            cell: (t) => (
              <>
                {qualifiedName(t, database)}
                {t.kind !== "table" && <span class="muted"> {t.kind === "partition" ? `partition of ${t.parent_name}` : "partitioned"}</span>}
              </>
            ),
          },
          { label: "Total", sort: "total", num: true, cell: (t) => <Bytes n={t.total_bytes} /> },
          { label: "Data", sort: "data", num: true, cell: (t) => <Bytes n={t.data_bytes} /> },
          { label: "Indexes", sort: "index", num: true, cell: (t) => <Bytes n={t.index_bytes} />, title: (t) => `${indexShare(t) ?? 0}% of the total` },
          { label: "Rows (est.)", num: true, cell: (t) => (t.row_estimate === null ? "—" : t.row_estimate.toLocaleString()) },
          { label: "7 days", sort: "growth_7d", num: true, cell: (t) => signedBytes(t.growth_7d_bytes, formatBytes) },
          { label: "30 days", sort: "growth_30d", num: true, cell: (t) => signedBytes(t.growth_30d_bytes, formatBytes) },
        ]}
      />
    </>
  );
}

/** The fleet's ten largest tables, each linked to its database. */
export function TopTablesCard() {
  const l = useLoad(() => get<{ items: TopTable[] }>("/tables/top", { limit: 10 }), "top-tables");
  return (
    <section data-testid="top-tables">
      <h2>Top tables</h2>
      <States l={l}>
        {(d) =>
          d.items.length === 0 ? (
            <p class="empty">No table sizes collected yet.</p>
          ) : (
            <DataTable
              rows={d.items}
              cols={[
                {
                  label: "Table",
                  cell: (t) => (
                    <>
                      {t.database_id ? <Link href={`/databases/${t.database_id}?tab=tables`}>{qualifiedName(t, t.database_name)}</Link> : qualifiedName(t, t.database_name)}{" "}
                      <span class="muted">
                        in {t.database_name} on {t.instance_name}
                      </span>
                    </>
                  ),
                },
                { label: "Size", num: true, cell: (t) => <Bytes n={t.total_bytes} /> },
                { label: "7 days", num: true, cell: (t) => signedBytes(t.growth_7d_bytes, formatBytes) },
              ]}
            />
          )
        }
      </States>
    </section>
  );
}
