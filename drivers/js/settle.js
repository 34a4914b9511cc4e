// Waits until the page is still: no DOM mutation, focus or scroll change for `quiet` ms, no running
// animation, document loaded; or until `timeout` ms. Reports whether anything changed since the last call.
async ({quiet, timeout}) => {
  const start = performance.now();
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const timer = (ms) => new Promise(r => setTimeout(r, ms));
  while (true) {
    await Promise.race([frame(), timer(20)]);
    const now = performance.now();
    const still = now - (window.__pp_last || 0) >= quiet;
    const animating = document.getAnimations ? document.getAnimations().some(a => a.playState === 'running' && a.effect && a.effect.getTiming().iterations !== Infinity) : false;
    if (still && !animating && document.readyState === 'complete') break;
    if (now - start > timeout) break;
  }
  const changed = (window.__pp_mut || 0) !== (window.__pp_seen || 0);
  window.__pp_seen = window.__pp_mut || 0;
  const popups = (window.__pp_popup || 0) - (window.__pp_popup_seen || 0);
  window.__pp_popup_seen = window.__pp_popup || 0;
  return {changed, popups, waited_ms: performance.now() - start};
}
