// Building DOM from data (text only, never HTML strings: names and reasons come
// from other people), and showing API errors next to the form control they name.

/** h("p", {class: "x", title: "y"}, "text", child, ...): an element; null/false children skipped. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== false && child !== undefined));
  return element;
}

/**
 * A piece of an element id for a name: letters, digits and '-' as they are, any other
 * character as _hex_, so that different names never share an id ("shop.eu" and
 * "shop-eu" are both valid app names; "a-b.example" and "a.b-example" both fqdns).
 */
export function idPart(name) {
  return name.replace(/[^A-Za-z0-9-]/g, (char) => `_${char.codePointAt(0).toString(16)}_`);
}

/** Put `message` in the element (or hide it when empty). */
export function say(element, message) {
  element.textContent = message ?? "";
  element.hidden = !message;
}

// ---- forms -------------------------------------------------------------------------

function errorElement(control) {
  return document.getElementById(`${control.id}-error`);
}

/** Remove every shown error: field messages, aria-invalid, the form's general area. */
export function clearErrors(form) {
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    const error = errorElement(control);
    if (error) say(error, "");
    const described = (control.getAttribute("aria-describedby") ?? "")
      .split(" ")
      .filter((id) => id && id !== error?.id);
    if (described.length) control.setAttribute("aria-describedby", described.join(" "));
    else control.removeAttribute("aria-describedby");
  }
  const general = form.querySelector(".form-error");
  if (general) say(general, "");
}

/**
 * Show an ApiError where it belongs: next to the control its `field` names
 * (aria-invalid, aria-describedby), else in the form's general error area.
 * The API names the field of every 400, and of 404s and 409s about one input
 * (an unknown app as primary, a label or name taken).
 */
export function showError(form, error) {
  clearErrors(form);
  const control = controlFor(form, error.field);
  if (!control) {
    say(form.querySelector(".form-error"), error.message);
    return;
  }
  // "ttl: must be ..." is shown beside the TTL field as "Must be ...".
  const prefix = `${error.field}: `;
  const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  const shown = errorElement(control);
  say(shown, capitalise(message));
  control.setAttribute("aria-invalid", "true");
  const described = (control.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean);
  control.setAttribute("aria-describedby", [...described, shown.id].join(" "));
  control.focus();
}

/** The form's visible, enabled control named `field` that has an error element, or null. */
function controlFor(form, field) {
  const control = field ? form.elements.namedItem(field) : null;
  const shown = control instanceof HTMLElement && !control.disabled && !control.closest("[hidden]");
  return shown && errorElement(control) ? control : null;
}

/** "must be ..." -> "Must be ..."; a message starting with a name ("shop.fo.example.net is ...") stays. */
export function capitalise(text) {
  return /^[a-z]+(\s|$)/.test(text ?? "") ? text[0].toUpperCase() + text.slice(1) : text;
}

/** "192.0.2.10, 192.0.2.11" or "lb.example.com" -> a list for the API. */
export function splitList(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}
