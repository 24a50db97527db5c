// A small hand-written SVG line chart (no dependencies): one panel per
// command, latency (ms, linear from 0) against store size (log scale).
const COLORS = { c: '#555555', ours: '#d95f02', bun: '#d95f02', node: '#1b9e77', proto: '#7570b3' };
const DASH = { c: '6 4', ours: '', bun: '', node: '2 3', proto: '8 3 2 3' };
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
const fmtSize = (n) => (n >= 1000 ? `${n / 1000}k` : String(n));

/**
 * @param {{ sizes: number[], subtitle: string,
 *   panels: { title: string, series: { name: string, kind: string, points: number[] }[] }[] }} d
 */
export function renderChart(d) {
  const cols = 3;
  const pw = 300;
  const ph = 210;
  const m = { l: 46, r: 14, t: 30, b: 34 };
  const rows = Math.ceil(d.panels.length / cols);
  const legendH = 34;
  const W = cols * pw;
  const H = 44 + rows * ph + legendH;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">nfsdcltrack: latency per call against store size</text>`);
  out.push(`<text x="${W / 2}" y="36" text-anchor="middle" fill="#555">${esc(d.subtitle)}</text>`);
  const lx = d.sizes.map((s) => Math.log10(s));
  const lmin = Math.min(...lx);
  const lmax = Math.max(...lx);
  d.panels.forEach((panel, k) => {
    const ox = (k % cols) * pw;
    const oy = 44 + Math.floor(k / cols) * ph;
    const iw = pw - m.l - m.r;
    const ih = ph - m.t - m.b;
    const all = panel.series.flatMap((s) => s.points).filter(Number.isFinite);
    const ymax = niceMax(Math.max(...all, 0) * 1.08);
    const X = (i) => ox + m.l + (lmax === lmin ? iw / 2 : ((lx[i] - lmin) / (lmax - lmin)) * iw);
    const Y = (v) => oy + m.t + ih - (v / ymax) * ih;
    out.push(`<text x="${ox + m.l + iw / 2}" y="${oy + 18}" text-anchor="middle" font-size="12" font-weight="bold">${esc(panel.title)}</text>`);
    for (let t = 0; t <= 4; t++) {
      const v = (ymax * t) / 4;
      const y = Y(v);
      out.push(`<line x1="${ox + m.l}" x2="${ox + m.l + iw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${ox + m.l - 4}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#444">${+v.toFixed(2)}</text>`);
    }
    d.sizes.forEach((s, i) => {
      out.push(`<line x1="${X(i).toFixed(1)}" x2="${X(i).toFixed(1)}" y1="${oy + m.t}" y2="${oy + m.t + ih}" stroke="#f0f0f0"/>`);
      out.push(`<text x="${X(i).toFixed(1)}" y="${oy + m.t + ih + 14}" text-anchor="middle" fill="#444">${fmtSize(s)}</text>`);
    });
    out.push(`<rect x="${ox + m.l}" y="${oy + m.t}" width="${iw}" height="${ih}" fill="none" stroke="#999"/>`);
    out.push(`<text x="${ox + m.l + iw / 2}" y="${oy + ph - 6}" text-anchor="middle" fill="#666">clients in store</text>`);
    out.push(`<text transform="translate(${ox + 12},${oy + m.t + ih / 2}) rotate(-90)" text-anchor="middle" fill="#666">ms</text>`);
    for (const s of panel.series) {
      const pts = s.points.map((v, i) => (Number.isFinite(v) ? `${X(i).toFixed(1)},${Y(v).toFixed(1)}` : null)).filter(Boolean);
      if (pts.length === 0) continue;
      const color = COLORS[s.kind] ?? '#7570b3';
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" stroke-dasharray="${DASH[s.kind] ?? ''}" points="${pts.join(' ')}"/>`);
      for (const p of pts) {
        const [x, y] = p.split(',');
        out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
      }
    }
  });
  const names = d.panels[0]?.series ?? [];
  const ly = H - legendH / 2;
  let x = W / 2 - (names.length * 190) / 2;
  for (const s of names) {
    const color = COLORS[s.kind] ?? '#7570b3';
    out.push(`<line x1="${x}" x2="${x + 28}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2" stroke-dasharray="${DASH[s.kind] ?? ''}"/>`);
    out.push(`<circle cx="${x + 14}" cy="${ly}" r="3" fill="${color}"/>`);
    out.push(`<text x="${x + 34}" y="${ly + 4}">${esc(s.name)}</text>`);
    x += 190;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
