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
 *
 * The API names the field of 400s; its 409s (a label or name taken) carry no
 * field, so a form may say which control a conflict is about with
 * `data-conflict-field` (used only when that control has a value).
 */
export function showError(form, error) {
  clearErrors(form);
  const control = controlFor(form, error);
  if (!control) {
    say(form.querySelector(".form-error"), error.message);
    return;
  }
  const message = error.message.startsWith(`${error.field ?? control.name}: `)
    ? error.message.slice((error.field ?? control.name).length + 2)
    : error.message;
  const shown = errorElement(control);
  say(shown, capitalise(message));
  control.setAttribute("aria-invalid", "true");
  const described = (control.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean);
  control.setAttribute("aria-describedby", [...described, shown.id].join(" "));
  control.focus();
}

function controlFor(form, error) {
  const named = (name) => {
    const control = name ? form.elements.namedItem(name) : null;
    const shown = control instanceof HTMLElement && !control.disabled && !control.closest("[hidden]");
    return shown && errorElement(control) ? control : null;
  };
  if (error.field) return named(error.field);
  // 404s name their field as a prefix: "primary: no app named 'x'".
  const prefix = /^([a-z_]+): /.exec(error.message);
  if (prefix && named(prefix[1])) return named(prefix[1]);
  if (error.status === 409) {
    const control = named(form.dataset.conflictField);
    if (control && control.value.trim()) return control;
  }
  return null;
}

/** "must be ..." -> "Must be ..."; a message starting with a name ("shop.fo.example.net is ...") stays. */
export function capitalise(text) {
  return /^[a-z]+(\s|$)/.test(text ?? "") ? text[0].toUpperCase() + text.slice(1) : text;
}

/** "192.0.2.10, 192.0.2.11" or "lb.example.com" -> a list for the API. */
export function splitList(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}
