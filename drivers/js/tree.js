// Collects the visible UI tree of the page: interactive elements and text-bearing elements, with
// boxes in CSS pixels of the viewport. Elements are kept in window.__pp_nodes so later calls
// (hit testing, select) can refer to them by index. With {focused: true}: only the element that
// has keyboard focus (through shadow roots), or nothing; the refs of the last full tree stay valid.
// With {offscreen: true}: also the elements scrolled out of the viewport (boxes outside it).
// With {css: selector}: only the elements the CSS selector matches (added to the refs).
// Structural elements (rows, cells, lists, forms, sections, [data-testid]) are containers: no name of
// their own unless aria-label gives one, so that a text matches the element that shows it; locators
// scope by them ("inside the row that has Alice").
(arg) => {
  const onlyFocused = !!(arg && arg.focused);
  const css = arg && arg.css;
  const offscreen = !!(arg && arg.offscreen);  // also what is scrolled out of view (to scroll it in)
  const INTERACTIVE = 'a[href],button,input,select,textarea,summary,label,[role],[onclick],[tabindex],[contenteditable="true"]';
  const ROLE_OF_TAG = {a: 'link', button: 'button', select: 'combobox', textarea: 'textbox', summary: 'button',
                       h1: 'heading', h2: 'heading', h3: 'heading', h4: 'heading', h5: 'heading', h6: 'heading',
                       li: 'listitem', img: 'img', label: 'label', option: 'option', dialog: 'dialog',
                       iframe: 'iframe', frame: 'iframe', tr: 'row', td: 'cell', th: 'columnheader',
                       table: 'table', ul: 'list', ol: 'list', form: 'form', fieldset: 'group',
                       section: 'region', article: 'article', nav: 'navigation', main: 'main',
                       header: 'banner', footer: 'contentinfo', aside: 'complementary'};
  const STRUCTURE = 'li,tr,td,th,table,ul,ol,form,fieldset,dialog,section,article,nav,main,header,footer,aside,[data-testid],[data-test-id]';
  const vw = window.innerWidth, vh = window.innerHeight;
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const visible = (el, r) => {
    if (r.width < 1 || r.height < 1) return false;
    if (!offscreen && (r.right < 0 || r.bottom < 0 || r.left > vw || r.top > vh)) return false;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none' || parseFloat(st.opacity) === 0) return false;
    return true;
  };
  const roleOf = (el) => {
    const explicit = el.getAttribute('role');
    if (explicit) return explicit.split(' ')[0];
    const tag = el.tagName.toLowerCase();
    if (tag === 'input') {
      const t = (el.getAttribute('type') || 'text').toLowerCase();
      if (t === 'checkbox') return 'checkbox';
      if (t === 'radio') return 'radio';
      if (t === 'submit' || t === 'button' || t === 'reset' || t === 'image') return 'button';
      if (t === 'range') return 'slider';
      return 'textbox';
    }
    return ROLE_OF_TAG[tag] || 'text';
  };
  const labelText = (el) => {
    const parts = [];
    if (el.labels) for (const l of el.labels) parts.push(clean(l.innerText));
    const by = el.getAttribute('aria-labelledby');
    if (by) for (const id of by.split(/\s+/)) { const t = document.getElementById(id); if (t) parts.push(clean(t.innerText)); }
    return parts.filter(Boolean).join(' ');
  };
  // a field with no label of its own is named by the text it shares a small container with (a caption
  // above, below or beside it in the same div or table row), as a reader pairs them
  const FIELDS = 'input:not([type=hidden]):not([type=submit]):not([type=button]):not([type=checkbox]):not([type=radio]),textarea,select';
  const sharedCaption = (el) => {
    let p = el.parentElement;
    for (let i = 0; i < 3 && p && p !== document.body; i++, p = p.parentElement) {
      if (p.querySelectorAll(FIELDS).length > 1) return '';
      const t = clean(p.innerText || '');
      if (t) return t.length <= 60 ? t : '';
    }
    return '';
  };
  const nameOf = (el, role) => {
    const aria = el.getAttribute('aria-label');
    if (aria) return clean(aria);
    const lab = labelText(el);
    if (lab) return lab;
    const tag = el.tagName.toLowerCase();
    if ((tag === 'input' || tag === 'textarea' || tag === 'select') && el.matches(FIELDS) && !el.getAttribute('title')) {
      const caption = sharedCaption(el);
      if (caption) return caption;
    }
    if (tag === 'input') {
      const t = (el.getAttribute('type') || 'text').toLowerCase();
      if (t === 'submit' || t === 'button' || t === 'reset') return clean(el.value || (t === 'submit' ? 'Submit' : ''));
      if (t === 'image') return clean(el.alt);
      return clean(el.getAttribute('title') || '');
    }
    if (tag === 'img') return clean(el.alt || el.title);
    if (tag === 'select' || tag === 'textarea') return clean(el.getAttribute('title') || '');
    return clean(el.innerText || el.textContent).slice(0, 200) || clean(el.getAttribute('title'));
  };
  const ownText = (el) => {
    let s = '';
    for (const c of el.childNodes) if (c.nodeType === 3) s += c.textContent;
    return clean(s);
  };
  const activeElement = () => {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    return el === document.body || el === document.documentElement ? null : el;
  };
  const active = activeElement();
  const seen = new Set();
  const list = [];
  // the part of an element its scrolling (overflow-clipping) ancestors show; null: none of it
  const clips = new Map();
  const clipOf = (p) => {
    if (!clips.has(p)) {
      const st = getComputedStyle(p);
      clips.set(p, st.overflowX !== 'visible' || st.overflowY !== 'visible' ? p.getBoundingClientRect() : null);
    }
    return clips.get(p);
  };
  const shown = (el, r) => {
    let x0 = r.left, y0 = r.top, x1 = r.right, y1 = r.bottom;
    for (let p = el.parentElement; p && p !== document.body && p !== document.documentElement; p = p.parentElement) {
      const c = clipOf(p);
      if (!c) continue;
      x0 = Math.max(x0, c.left); y0 = Math.max(y0, c.top); x1 = Math.min(x1, c.right); y1 = Math.min(y1, c.bottom);
      if (x1 - x0 < 1 || y1 - y0 < 1) return null;
    }
    return {left: x0, top: y0, width: x1 - x0, height: y1 - y0, right: x1, bottom: y1};
  };
  const add = (el, interactive, container) => {
    if (seen.has(el)) return;
    let r = el.getBoundingClientRect();
    if (!visible(el, r)) return;
    if (!offscreen) {  // cut off by a scrolling box: only the part it shows, or nothing
      r = shown(el, r);
      if (!r) return;
    }
    seen.add(el);
    list.push([el, r, interactive, !!container]);
  };
  if (onlyFocused) {
    if (active) add(active, true);
  } else if (css) {
    let found;
    try { found = document.querySelectorAll(css); } catch (e) { return {error: String(e.message || e)}; }
    for (const el of found) add(el, el.matches(INTERACTIVE), !el.matches(INTERACTIVE) && !ownText(el));
  } else {
    // the document and every open shadow root in it (web components), depth first
    const roots = [document];
    for (let i = 0; i < roots.length; i++) {
      for (const el of roots[i].querySelectorAll('*')) if (el.shadowRoot) roots.push(el.shadowRoot);
    }
    for (const root of roots) {
      for (const el of root.querySelectorAll(INTERACTIVE)) add(el, true);
      for (const el of root.querySelectorAll('iframe,frame')) add(el, false);  // their elements follow the page's
      const start = root === document ? (document.body || document.documentElement) : root;
      const walker = document.createTreeWalker(start, NodeFilter.SHOW_ELEMENT);
      for (let el = walker.currentNode; el; el = walker.nextNode()) {
        if (el.nodeType !== 1 || el.tagName === 'SCRIPT' || el.tagName === 'STYLE') continue;
        // text, or an icon's name: a title (tooltip), an aria-label, an image's alt text
        if (ownText(el) || el.hasAttribute('title') || el.hasAttribute('aria-label') || (el.tagName === 'IMG' && el.alt)) add(el, false);
      }
      for (const el of root.querySelectorAll(STRUCTURE)) add(el, false, true);
    }
  }
  if ((!onlyFocused && !css) || !window.__pp_nodes) window.__pp_nodes = [];
  const out = [];
  for (let [el, r, interactive, container] of list) {
    if (offscreen && (el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1)) {
      // a scrolling box, out of view too: all it holds, so what is scrolled away in it is inside it
      r = {left: r.left - el.scrollLeft, top: r.top - el.scrollTop,
           width: Math.max(r.width, el.scrollWidth), height: Math.max(r.height, el.scrollHeight)};
    }
    const role = roleOf(el);
    const ref = window.__pp_nodes.push(el) - 1;
    const tag = el.tagName.toLowerCase();
    const node = {
      ref: String(ref), role, tag, interactive: interactive && role !== 'label',
      name: container ? clean(el.getAttribute('aria-label') || '') : nameOf(el, role),
      text: ownText(el).slice(0, 200),
      inner: container || css ? clean(el.innerText || el.textContent).slice(0, 1000) : null,
      title: clean(el.getAttribute('title') || ''),
      testid: el.getAttribute('data-testid') || el.getAttribute('data-test-id') || '',
      enabled: !(el.disabled || el.getAttribute('aria-disabled') === 'true'),
      placeholder: clean(el.getAttribute('placeholder') || ''),
      x: r.left, y: r.top, w: r.width, h: r.height,
      value: null, checked: null, options: [], focused: el === active,
    };
    if (tag === 'input' || tag === 'textarea' || tag === 'select') node.value = el.value;
    if (role === 'checkbox' || role === 'radio') node.checked = !!el.checked;
    if (el.getAttribute('aria-checked')) node.checked = el.getAttribute('aria-checked') === 'true';
    if (tag === 'select') {
      node.options = Array.from(el.options).map(o => clean(o.label || o.text));
      node.value = el.selectedIndex >= 0 ? node.options[el.selectedIndex] : '';
    }
    out.push(node);
  }
  return out;
}
