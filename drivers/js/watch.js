// Installed in every document: counts DOM mutations, focus, input and scroll events, so that
// settle.js can tell when the page is still and whether an action changed anything.
(() => {
  if (window.__pp_watch) return;
  window.__pp_watch = true;
  window.__pp_mut = 0; window.__pp_seen = 0; window.__pp_last = performance.now();
  const bump = () => { window.__pp_mut++; window.__pp_last = performance.now(); };
  // A ticking element (a clock, a countdown) changes on its own: once it has changed twice, a second
  // or more apart, with no input from anyone, its changes no longer count as an action's effect.
  // Only changes with no pointer or key input in the second before them teach what ticks.
  let inputAt = -1e9;
  for (const ev of ['pointerdown', 'keydown', 'wheel']) window.addEventListener(ev, () => { inputAt = performance.now(); }, true);
  const ticks = new WeakMap();
  const ticking = (el) => { const t = ticks.get(el); return !!t && t.n >= 2 && t.last - t.first >= 900; };
  const observed = (records) => {
    const now = performance.now();
    const spontaneous = now - inputAt > 1000;
    let real = false;
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (!el) { real = true; continue; }
      if (spontaneous) {
        const t = ticks.get(el);
        if (!t || now - t.last > 5000) ticks.set(el, {n: 1, first: now, last: now});
        else if (now - t.last > 300) { t.n++; t.last = now; }
      }
      if (!ticking(el)) real = true;
    }
    if (real) bump();
  };
  const start = () => {
    new MutationObserver(observed).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  };
  if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
  // changes inside shadow roots (web components) count too: watch each root as it is attached
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (...args) {
    const root = attach.apply(this, args);
    new MutationObserver(observed).observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
    return root;
  };
  for (const ev of ['focusin', 'input', 'change', 'scroll']) window.addEventListener(ev, bump, true);
  // a new tab on its way (a link with a target, window.open): settle waits for it to appear
  window.__pp_popup = 0; window.__pp_popup_seen = 0;
  const opening = () => { window.__pp_popup++; };
  const open = window.open;
  window.open = function (...args) { opening(); return open.apply(this, args); };
  document.addEventListener('click', (e) => {
    const a = e.target && e.target.closest && e.target.closest('a[href][target]');
    if (a && !['', '_self', '_parent', '_top'].includes(a.target)) opening();
  }, true);
  document.addEventListener('submit', (e) => {  // a form that posts into a new tab
    const f = e.target, t = (e.submitter && e.submitter.getAttribute('formtarget')) || (f && f.target) || '';
    if (!['', '_self', '_parent', '_top'].includes(t)) opening();
  }, true);
})();
