/** The status page: one self-contained HTML document that polls /api/status. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NerveBus</title></head>
<body><h1>NerveBus</h1><pre id="status">loading…</pre>
<script>
async function refresh() {
  const r = await fetch("/api/status");
  document.getElementById("status").textContent = JSON.stringify(await r.json(), null, 2);
}
refresh();
setInterval(refresh, 2000);
</script></body></html>
`;
