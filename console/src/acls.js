// Access controls: the policy file in an editor with line numbers. Saving sends If-Match with the ETag
// the file was read with, so a concurrent edit is reported and never overwritten; the API's errors
// (line:column) and failing tests are shown, and a refused save changes nothing.
import { useEffect, useRef, useState } from 'preact/hooks';
import { can } from '../../coord/roles.ts';
import { api } from './api.js';
import { ErrorText, html } from './ui.js';

const AT = /^(\d+):(\d+): /;

function Editor({ text, setText, readOnly, badLine, editorRef }) {
  const gutter = useRef(null);
  const lines = text.split('\n').length;
  const sync = (e) => {
    if (gutter.current) gutter.current.scrollTop = e.target.scrollTop;
  };
  return html`<div class="editor">
    <div class="gutter" ref=${gutter} aria-hidden="true">
      ${Array.from({ length: lines }, (_, i) => html`<div class=${i + 1 === badLine ? 'bad' : ''}>${i + 1}</div>`)}
    </div>
    <textarea ref=${editorRef} aria-label="Policy file" spellcheck="false" wrap="off" readOnly=${readOnly} value=${text}
      onInput=${(e) => setText(e.target.value)} onScroll=${sync}></textarea>
  </div>`;
}

/** Moves the caret to a line (1-based) and column of the textarea and scrolls it into view. */
function goTo(area, line, column = 1) {
  if (!area) return;
  const lines = area.value.split('\n');
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
  offset += Math.max(0, column - 1);
  area.focus();
  area.setSelectionRange(offset, offset);
  const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
  area.scrollTop = Math.max(0, (line - 5) * lineHeight);
}

export function AccessControls({ me }) {
  const writer = can(me.user.role, 'policy:write');
  const [text, setText] = useState(null);
  const [etag, setEtag] = useState('');
  const [problem, setProblem] = useState(null); // { message, line, column, tests }
  const [saved, setSaved] = useState('');
  const [type, setType] = useState('user');
  const [previewFor, setPreviewFor] = useState('');
  const [matches, setMatches] = useState(null);
  const [previewError, setPreviewError] = useState('');
  const area = useRef(null);
  const load = async () => {
    try {
      const r = await api.raw('GET', '/tailnet/-/acl', undefined, { accept: 'application/hujson' });
      setEtag(r.headers.get('etag') || '');
      setText(r.text);
    } catch (e) {
      setProblem({ message: e.message });
    }
  };
  useEffect(() => void load(), []);
  const fail = (e) => {
    const at = AT.exec(e.message);
    setProblem({
      message: e.message,
      line: at ? Number(at[1]) : undefined,
      column: at ? Number(at[2]) : undefined,
      tests: Array.isArray(e.data) ? e.data : undefined,
      conflict: e.status === 412,
    });
    if (at) goTo(area.current, Number(at[1]), Number(at[2]));
  };
  const save = async () => {
    setProblem(null);
    setSaved('');
    try {
      const r = await api.raw('POST', '/tailnet/-/acl', text, { 'content-type': 'application/hujson', 'if-match': etag });
      setEtag(r.headers.get('etag') || '');
      setSaved('Saved.');
    } catch (e) {
      fail(e);
    }
  };
  const runPreview = async (e) => {
    e.preventDefault();
    setPreviewError('');
    try {
      const q = new URLSearchParams({ type, previewFor });
      const r = await api.raw('POST', `/tailnet/-/acl/preview?${q}`, text, { 'content-type': 'application/hujson' });
      setMatches(r.data.matches);
    } catch (err) {
      setMatches(null);
      setPreviewError(err.message);
    }
  };
  if (text === null) return html`<section><h1>Access controls</h1>${problem ? html`<${ErrorText} error=${problem.message} />` : html`<p>Loading…</p>`}</section>`;
  return html`<section>
    <h1>Access controls</h1>
    <p class="muted">The policy file, in Tailscale's syntax (HuJSON: comments and trailing commas allowed). Deny by default.${writer ? '' : ' Your role may read it, not change it.'}</p>
    <${Editor} text=${text} setText=${(t) => (setText(t), setSaved(''))} readOnly=${!writer} badLine=${problem?.line} editorRef=${area} />
    ${problem &&
    html`<div class="error" role="alert">
      ${problem.line ? html`<button class="link" onClick=${() => goTo(area.current, problem.line, problem.column)}>Line ${problem.line}, column ${problem.column}</button>: ${problem.message.replace(AT, '')}` : problem.message}
      ${problem.tests && html`<ul>${problem.tests.map((t) => html`<li>${t.user}: ${t.errors.join('; ')}</li>`)}</ul><p>The policy was not saved.</p>`}
      ${problem.conflict && html`<p>Someone changed the policy since you opened it; nothing was overwritten. <button onClick=${() => (setProblem(null), load())}>Load their version</button></p>`}
    </div>`}
    ${saved && html`<p class="ok" role="status">${saved}</p>`}
    ${writer && html`<div class="buttons"><button onClick=${() => (setProblem(null), load())}>Discard changes</button><button class="primary" onClick=${save}>Save</button></div>`}
    <h2>Preview rules</h2>
    <form class="row" onSubmit=${runPreview}>
      <label>Preview for<select value=${type} onChange=${(e) => setType(e.target.value)}><option value="user">a user</option><option value="ipport">an IP:port</option></select></label>
      <label>${type === 'user' ? 'User email' : 'IP:port'}<input required value=${previewFor} onInput=${(e) => setPreviewFor(e.target.value)} placeholder=${type === 'user' ? 'alice@example.com' : '100.64.0.1:22'} /></label>
      <button type="submit">Preview rules</button>
    </form>
    <${ErrorText} error=${previewError} />
    ${matches &&
    (matches.length === 0
      ? html`<p class="muted">No rule matches: everything is denied.</p>`
      : html`<table class="preview" aria-label="Matching rules"><thead><tr><th scope="col">Line</th><th scope="col">Sources</th><th scope="col">Destinations</th></tr></thead><tbody>
        ${matches.map((m) => html`<tr><td><button class="link" onClick=${() => goTo(area.current, m.lineNumber)}>line ${m.lineNumber}</button></td><td>${m.users.join(', ')}</td><td>${m.ports.join(', ')}</td></tr>`)}
      </tbody></table>`)}
  </section>`;
}
