// A tiny element builder. Children are appended as nodes or text nodes, never parsed as HTML,
// so user data (usernames, message bodies) can never inject markup.

type Child = Node | string | number | null | undefined | false;

interface Props {
  class?: string;
  id?: string;
  type?: string;
  name?: string;
  placeholder?: string;
  value?: string;
  title?: string;
  href?: string;
  autocomplete?: string;
  disabled?: boolean;
  required?: boolean;
  minLength?: number;
  maxLength?: number;
  rows?: number;
  role?: string;
  ariaLabel?: string;
  ariaLive?: 'polite' | 'assertive' | 'off';
  data?: Record<string, string>;
  on?: Partial<{ [E in keyof HTMLElementEventMap]: (event: HTMLElementEventMap[E]) => void }>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.id) el.id = props.id;
  if (props.title) el.title = props.title;
  if (props.role) el.setAttribute('role', props.role);
  if (props.ariaLabel) el.setAttribute('aria-label', props.ariaLabel);
  if (props.ariaLive) el.setAttribute('aria-live', props.ariaLive);
  for (const [key, value] of Object.entries(props.data ?? {})) el.dataset[key] = value;
  const field = el as unknown as Record<string, unknown>;
  for (const key of ['type', 'name', 'placeholder', 'value', 'href', 'autocomplete', 'disabled',
    'required', 'minLength', 'maxLength', 'rows'] as const) {
    if (props[key] !== undefined) field[key] = props[key];
  }
  for (const [event, handler] of Object.entries(props.on ?? {})) {
    el.addEventListener(event, handler as EventListener);
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}
