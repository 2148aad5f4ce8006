// Draws a Grafana dashboard JSON of k8s/components/monitoring/dashboards with live data from a
// Prometheus, panel by panel where its gridPos puts it, and screenshots it. Not Grafana: its
// layout, titles, queries and legends, drawn by this page (docs/screenshots/dashboard-*.png).
//
//   node scripts/dashboard-screenshots.mjs <dashboard.json> <out.png> <prometheus url> <start s> <end s> [pool]
import { createRequire } from "node:module";
import fs from "node:fs";

// playwright-core as the browser tests have it (npm ci --prefix tests/browser).
const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [, , dashboardFile, out, prometheus, start, end, pool = "bench"] = process.argv;
const dashboard = JSON.parse(fs.readFileSync(dashboardFile, "utf8"));
const step = Math.max(2, Math.round((end - start) / 200));
const colors = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642", "#cca300"];

async function series(target) {
  const expr = target.expr.replaceAll("$pool", pool);
  const url = `${prometheus}/api/v1/query_range?` + new URLSearchParams({ query: expr, start, end, step });
  const answer = await (await fetch(url)).json();
  if (answer.status !== "success") throw new Error(`${expr}: ${answer.error}`);
  return answer.data.result.map((r) => ({
    name: (target.legendFormat || expr).replace(/\{\{(\w+)\}\}/g, (_, label) => r.metric[label] ?? ""),
    points: r.values.map(([t, v]) => [t, Number(v)]).filter(([, v]) => Number.isFinite(v)),
  }));
}

function chart(lines, width, height) {
  const all = lines.flatMap((l) => l.points);
  if (all.length === 0) return `<div class="empty">No data</div>`;
  const max = Math.max(...all.map(([, v]) => v), 0) || 1;
  const x = (t) => 48 + ((t - start) / (end - start)) * (width - 56);
  const y = (v) => height - 20 - (v / max) * (height - 30);
  const label = (v) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toPrecision(2));
  const time = (t) => new Date(t * 1000).toISOString().slice(11, 19);
  let svg = `<svg width="${width}" height="${height}">`;
  for (const f of [0, 0.5, 1]) {
    svg += `<line x1="48" x2="${width - 8}" y1="${y(max * f)}" y2="${y(max * f)}" class="grid"/>`;
    svg += `<text x="44" y="${y(max * f) + 4}" text-anchor="end">${label(max * f)}</text>`;
  }
  for (const t of [Number(start), (Number(start) + Number(end)) / 2, Number(end)]) {
    svg += `<text x="${Math.min(x(t), width - 30)}" y="${height - 4}" text-anchor="middle">${time(t)}</text>`;
  }
  lines.forEach((l, i) => {
    const d = l.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg += `<polyline points="${d}" fill="none" stroke="${colors[i % colors.length]}" stroke-width="1.5"/>`;
  });
  return svg + "</svg>";
}

const unit = 1600 / 24;
let panels = "";
let bottom = 0;
for (const panel of dashboard.panels) {
  const g = panel.gridPos;
  const lines = (await Promise.all((panel.targets || []).map(series))).flat();
  const width = g.w * unit - 12;
  const height = g.h * 30 - 12;
  const legend = lines
    .slice(0, 8)
    .map((l, i) => `<span><i style="background:${colors[i % colors.length]}"></i>${l.name}</span>`)
    .join("");
  panels += `<section style="left:${g.x * unit}px;top:${g.y * 30}px;width:${width}px;height:${height}px">
    <h2>${panel.title.replaceAll("$pool", pool)}</h2>${chart(lines, width - 16, height - 70)}<div class="legend">${legend}</div></section>`;
  bottom = Math.max(bottom, (g.y + g.h) * 30);
}
const html = `<!doctype html><html><head><style>
  body { margin: 0; background: #111217; color: #ccccdc; font: 12px system-ui, sans-serif; }
  header { padding: 10px 14px; font-size: 16px; } header small { color: #8e8e9e; margin-left: 12px; }
  main { position: relative; height: ${bottom}px; margin: 0 6px; }
  section { position: absolute; background: #181b1f; border: 1px solid #2c3235; border-radius: 2px; padding: 6px 8px; box-sizing: border-box; overflow: hidden; }
  h2 { font-size: 13px; font-weight: 500; margin: 0 0 4px; }
  svg text { fill: #8e8e9e; font-size: 10px; } .grid { stroke: #2c3235; }
  .legend span { margin-right: 10px; white-space: nowrap; } .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
  .empty { color: #8e8e9e; padding: 40px; text-align: center; }
</style></head><body><header>${dashboard.title}<small>${pool !== "bench" || dashboardFile.includes("pool") ? `pool = ${pool} · ` : ""}its queries on live data, drawn from Prometheus</small></header><main>${panels}</main></body></html>`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const page = await browser.newPage({ viewport: { width: 1612, height: 800 } });
await page.setContent(html);
await page.screenshot({ path: out, fullPage: true });
await browser.close();
console.log(`${out}: ${dashboard.panels.length} panels`);
