// A point inside element #ref that really hits it (elementFromPoint is the element or inside it),
// trying the centre first, then points nearer the edges. Returns [x, y] in CSS pixels, or null.
// With {ref, settle: true}: first waits two frames (the pointer was just moved onto the page: a hover
// menu may have closed, a tooltip opened) and takes what that changed as seen.
async (arg) => {
  const ref = typeof arg === 'object' && arg !== null ? arg.ref : arg;
  if (typeof arg === 'object' && arg !== null && arg.settle) {
    await new Promise((done) => { setTimeout(done, 100); requestAnimationFrame(() => requestAnimationFrame(done)); });
    window.__pp_seen = window.__pp_mut || 0;
  }
  const el = (window.__pp_nodes || [])[Number(ref)];
  if (!el || !el.isConnected) return 'detached';
  const r = el.getBoundingClientRect();
  const fr = [0.5, 0.2, 0.8, 0.35, 0.65, 0.05, 0.95];
  for (const fy of fr) for (const fx of fr) {
    const x = r.left + r.width * fx, y = r.top + r.height * fy;
    if (x < 0 || y < 0 || x >= window.innerWidth || y >= window.innerHeight) continue;
    let hit = document.elementFromPoint(x, y);
    while (hit && hit.shadowRoot) {  // into open shadow roots: the host is what the document reports
      const inner = hit.shadowRoot.elementFromPoint(x, y);
      if (!inner || inner === hit) break;
      hit = inner;
    }
    if (hit && (hit === el || el.contains(hit) || (el.control && hit === el.control) || (hit.labels && Array.from(hit.labels).includes(el)))) return [x, y];
  }
  // nothing of it can be hit: say what is on top at its centre (the message names both)
  const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const top = cx >= 0 && cy >= 0 && cx < window.innerWidth && cy < window.innerHeight ? document.elementFromPoint(cx, cy) : null;
  if (!top) return {cover: null};
  const tag = top.tagName.toLowerCase() + (top.id ? '#' + top.id : '') +
    (typeof top.className === 'string' && top.className.trim() ? '.' + top.className.trim().split(/\s+/).slice(0, 2).join('.') : '');
  const text = (top.innerText || top.getAttribute('aria-label') || '').replace(/\s+/g, ' ').trim().slice(0, 60);
  return {cover: text ? `${tag} "${text}"` : tag};
}
