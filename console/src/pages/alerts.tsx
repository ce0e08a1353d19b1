import { post } from "../api/client";
import type { Alert } from "../api/types";
import { alertTarget, describeAlert } from "../alerts";
import { FilterBar, PagedList, usePagedList } from "../list";
import { Link } from "../router";
import { useCan } from "../session";
import { Badge, Time, useAction } from "../ui";

const STATES: [string, string][] = [["", "any"], ["firing", "firing"], ["acknowledged", "acknowledged"]];
const SEVERITIES: [string, string][] = [["", "any"], ["critical", "critical"], ["warning", "warning"], ["info", "info"]];

/** The capacity alerts the daily evaluation recorded; operators acknowledge them. */
export function Alerts() {
  const list = usePagedList<Alert>("/alerts");
  const operator = useCan("operator");
  const [notice, act] = useAction();
  return (
    <>
      <h1>Alerts</h1>
      {notice}
      <FilterBar at={list} selects={[["State", "state", STATES], ["Severity", "severity", SEVERITIES]]} />
      <PagedList
        list={list}
        emptyText="No alert: the rules found nothing, or none is defined yet (POST /alert-rules)."
        cols={[
          { label: "Day", cell: (a) => a.day },
          { label: "Severity", cell: (a) => <Badge value={a.severity} /> },
          { label: "Rule", cell: (a) => a.rule_name },
          { label: "Target", cell: (a) => <Link href={`/instances/${a.instance_id}`}>{alertTarget(a)}</Link> },
          { label: "Why", cell: (a) => describeAlert(a) },
          {
            label: "State",
            cell: (a) => (
              <>
                <Badge value={a.state} />
                {a.acknowledged_at && (
                  <span class="muted">
                    {" "}
                    by {a.acknowledged_by} <Time iso={a.acknowledged_at} />
                  </span>
                )}
              </>
            ),
          },
          {
            cell: (a) =>
              operator &&
              a.state === "firing" && (
                <button class="secondary" onClick={() => act(() => post(`/alerts/${a.id}/actions/acknowledge`), "Alert acknowledged.", list.l.reload)}>
                  Acknowledge
                </button>
              ),
          },
        ]}
      />
    </>
  );
}
