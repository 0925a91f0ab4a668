// Building the page from data without markup: every value becomes a text
// node, so nothing the API returns can turn into HTML.

/**
 * Creates an element. `props` sets attributes (`class`, `aria-*`, …),
 * properties for a few form fields, and listeners for `on<event>`; children
 * are nodes or strings (made text nodes), null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = tag === 'svg' || tag === 'rect' || tag === 'path'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' || key === 'checked') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A fresh id, to tie a label to its field. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled input; `options.hint` adds a described-by text. */
export function field(label, props = {}, hint) {
  const id = uid();
  const hintId = hint ? `${id}-hint` : undefined;
  const input = h('input', { id, 'aria-describedby': hintId, ...props });
  const wrapper = h('div', { class: props.type === 'checkbox' ? 'field check' : 'field' },
    props.type === 'checkbox' ? [input, h('label', { for: id }, label)] : [h('label', { for: id }, label), input],
    hint ? h('p', { id: hintId, class: 'hint' }, hint) : null);
  return { wrapper, input };
}

/** A labelled select from `[value, text]` pairs. */
export function select(label, choices, value) {
  const id = uid();
  const input = h('select', { id },
    choices.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  return { wrapper: h('div', { class: 'field' }, h('label', { for: id }, label), input), input };
}

/** A timestamp for people, in their locale; the exact value as a tooltip. */
export function when(value) {
  if (!value) return h('span', { class: 'muted' }, '—');
  const date = new Date(value);
  return h('time', { datetime: value, title: value }, date.toLocaleString());
}

/** A yes/no cell. */
export function yesNo(value) {
  return value ? 'Yes' : 'No';
}
