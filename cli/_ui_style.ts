// The stylesheet of `toka ui` (served as app.css): shipped in the package, no CDN.

/** The page's CSS. */
export const CLIENT_CSS: string = String.raw`
:root { color-scheme: light dark; --fg: #1d2330; --muted: #6b7280; --bg: #fff; --line: #e5e7eb;
  --accent: #2563eb; --ok: #15803d; --bad: #b91c1c; --soft: #f3f4f6; --tool: #7c3aed;
  --model: #db2777; --step: #0891b2; --handling: #2563eb; }
@media (prefers-color-scheme: dark) { :root { --fg: #e5e7eb; --muted: #9ca3af; --bg: #111827;
  --line: #374151; --soft: #1f2937; --accent: #60a5fa; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1rem; padding: .5rem 1rem;
  border-bottom: 1px solid var(--line); position: sticky; top: 0; background: var(--bg); z-index: 1; }
header h1 { font-size: 1.1rem; margin: 0; }
nav { display: flex; gap: .25rem; }
nav a { padding: .25rem .6rem; border-radius: 4px; color: var(--fg); text-decoration: none; }
nav a.active { background: var(--accent); color: #fff; }
.location { color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; }
.live { margin-left: auto; font-size: 12px; padding: .1rem .5rem; border-radius: 999px;
  border: 1px solid var(--line); }
.live.on { color: var(--ok); border-color: var(--ok); }
.live.off { color: var(--muted); }
main { padding: 1rem; }
h2 { font-size: 1.05rem; margin: 0 0 .75rem; }
h3 { font-size: .95rem; margin: 1rem 0 .4rem; }
.muted { color: var(--muted); }
.mono, code, pre, td.mono { font-family: ui-monospace, monospace; font-size: 12px; }
form.filters { display: flex; gap: .5rem; flex-wrap: wrap; margin-bottom: .75rem; }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 4px;
  background: var(--bg); color: var(--fg); }
button { font: inherit; padding: .25rem .7rem; border: 1px solid var(--accent); border-radius: 4px;
  background: var(--accent); color: #fff; cursor: pointer; }
button.plain { background: none; color: var(--accent); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
tr.event { cursor: pointer; }
tr.event:hover { background: var(--soft); }
tr.event.new { animation: flash 1.5s ease-out; }
@keyframes flash { from { background: #fef08a; } to { background: transparent; } }
td.payload { max-width: 36rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
tr.detail > td { background: var(--soft); }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.cols > div { min-width: 0; }
.detail-grid { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
.detail-grid dt { color: var(--muted); }
.detail-grid dd { margin: 0; font-family: ui-monospace, monospace; font-size: 12px;
  word-break: break-all; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .5rem;
  overflow: auto; max-height: 24rem; margin: .25rem 0; }
ul.links { list-style: none; padding: 0; margin: 0; }
ul.links li { padding: .1rem 0; }
a { color: var(--accent); }
.kind { font-weight: 600; }
.ok { color: var(--ok); }
.bad { color: var(--bad); }
.waterfall { display: grid; grid-template-columns: minmax(12rem, 26rem) 1fr 6rem; gap: .25rem .75rem;
  align-items: center; }
.waterfall .label { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.track { position: relative; height: 14px; background: var(--soft); border-radius: 3px; }
.bar { position: absolute; top: 0; bottom: 0; min-width: 3px; border-radius: 3px; }
.bar.handling { background: var(--handling); }
.bar.tool { background: var(--tool); }
.bar.model { background: var(--model); }
.bar.step { background: var(--step); }
.bar.failed { background: var(--bad); }
progress { width: 24rem; }
.pager { margin-top: .75rem; }
.error { color: var(--bad); }
`;
