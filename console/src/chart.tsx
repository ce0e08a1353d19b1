// Time series with uPlot. Each draw is timed with the Performance API (measure "chart:<name>")
// so the end-to-end run can report how long a chart takes.
import { useLayoutEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Series } from "./chart-types";
import { formatBytes } from "./format";

export type { Series };

/** `since`: a performance.now() taken before the data was shaped, so the measure covers it. */
export function Chart(props: { name: string; xs: number[]; series: Series[]; threshold?: number | null; height?: number; since?: number }) {
  const el = useRef<HTMLDivElement>(null);
  // Layout effect: the chart is built right after the DOM commit, not a frame later.
  useLayoutEffect(() => {
    const host = el.current;
    if (!host) return;
    const start = props.since ?? performance.now();
    const width = Math.max(300, host.clientWidth || 800);
    const opts: uPlot.Options = {
      width,
      height: props.height ?? 300,
      scales: { x: { time: true } },
      axes: [{}, { values: (_u, vals) => vals.map((v) => formatBytes(v)), size: 80 }],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 2,
          dash: s.dash,
          spanGaps: true,
          // Markers only where uPlot finds room for them (not for 730 points on 1200 px).
          points: s.points ? { size: 4 } : { show: false },
          value: (_u: uPlot, v: number | null) => formatBytes(v),
        })),
      ],
      hooks: {
        draw: [
          (u) => {
            // uPlot draws after construction (a microtask); the first draw ends the measure.
            if (!host.dataset.renderMs) {
              const m = performance.measure(`chart:${props.name}`, { start, end: performance.now() });
              host.dataset.renderMs = m.duration.toFixed(2);
              host.dataset.points = String(props.series[0]?.values.filter((v) => v !== null).length ?? 0);
            }
            if (props.threshold) {
              const y = u.valToPos(props.threshold, "y", true);
              const ctx = u.ctx;
              ctx.save();
              ctx.strokeStyle = "#c0392b";
              ctx.setLineDash([6, 4]);
              ctx.beginPath();
              ctx.moveTo(u.bbox.left, y);
              ctx.lineTo(u.bbox.left + u.bbox.width, y);
              ctx.stroke();
              ctx.restore();
            }
          },
        ],
      },
    };
    const data = [props.xs, ...props.series.map((s) => s.values)] as uPlot.AlignedData;
    delete host.dataset.renderMs;
    const plot = new uPlot(opts, data, host);
    const onResize = () => plot.setSize({ width: Math.max(300, host.clientWidth), height: props.height ?? 300 });
    window.addEventListener("resize", onResize);
    return () => {
      window.removeEventListener("resize", onResize);
      plot.destroy();
    };
  }, [props.xs, props.series, props.threshold]);
  return <div class="chart" ref={el} data-testid={`chart-${props.name}`} role="img" aria-label={`${props.name} chart`} />;
}
