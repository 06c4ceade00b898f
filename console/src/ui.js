// Small shared pieces: routing, dialogs, avatars, time.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';

export { html };

let onNavigate = () => {};
export function setNavigator(fn) {
  onNavigate = fn;
}
export function navigate(path) {
  if (location.pathname !== path) history.pushState(null, '', path);
  onNavigate(path);
}

export function Link({ href, children, ...rest }) {
  const click = (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} onClick=${click} ...${rest}>${children}</a>`;
}

let dialogs = 0;
/** A modal dialog: focus moves in, Escape closes, focus returns to where it was. */
export function Dialog({ title, onClose, children }) {
  const ref = useRef(null);
  const id = useRef(`dlg-${++dialogs}`).current;
  useEffect(() => {
    const before = document.activeElement;
    const first = ref.current?.querySelector('input, select, textarea, button:not(.close)');
    (first || ref.current)?.focus();
    return () => before && before.focus && before.focus();
  }, []);
  const key = (e) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      onClose();
    }
  };
  return html`<div class="overlay" onClick=${(e) => e.target === e.currentTarget && onClose()}>
    <div class="dialog" role="dialog" aria-modal="true" aria-labelledby=${id} ref=${ref} tabindex="-1" onKeyDown=${key}>
      <div class="dialog-head"><h2 id=${id}>${title}</h2><button class="close" aria-label="Close" onClick=${onClose}>×</button></div>
      ${children}
    </div>
  </div>`;
}

export function initials(nameOrEmail) {
  const base = (nameOrEmail || '?').split('@')[0];
  const parts = base.split(/[\s._-]+/).filter(Boolean);
  const two = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] ?? '?').slice(0, 2);
  return two.toUpperCase();
}

export function Avatar({ who }) {
  return html`<span class="avatar" aria-hidden="true">${initials(who)}</span>`;
}

export function ago(iso) {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toISOString().slice(0, 10);
}

export function ErrorText({ error }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : null;
}
