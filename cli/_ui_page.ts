// The one HTML page of `toka ui`: a shell the client (app.js) fills in. No inline script or
// style, so the Content-Security-Policy can forbid both.

/**
 * The page, with the vault's location shown in its header.
 *
 * @param location Where the vault lives, as the user named it.
 * @returns The HTML.
 */
export function pageHtml(location: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Toka</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
<script type="module" src="app.js"></script>
</head>
<body>
<header>
  <h1>Toka</h1>
  <span class="location" title="vault">${escapeHtml(location)}</span>
  <nav>
    <a href="#/events" data-view="events">Events</a>
    <a href="#/runs" data-view="runs">Runs</a>
    <a href="#/agents" data-view="agents">Agents</a>
    <a href="#/integrity" data-view="integrity">Integrity</a>
  </nav>
  <span id="live" class="live off">not live</span>
</header>
<main id="main"><p class="muted">Loading…</p></main>
<noscript>This page needs JavaScript.</noscript>
</body>
</html>
`;
}

/**
 * Text made safe to place in HTML.
 *
 * @param text Any text.
 * @returns The text with `&`, `<`, `>`, `"` and `'` escaped.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
