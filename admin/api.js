// The admin API as the dashboard uses it: the token (this tab's sessionStorage
// only, never a URL) and one `call` that turns error replies into ApiError.

const TOKEN_KEY = "fodns.admin-token";

/** An error reply, `{"error": {"code", "message", "field"?}}`, with its HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field ?? null;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** One call to /v1: the decoded JSON body (null for 204), or an ApiError. */
export async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token.get() ?? ""}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  let text;
  try {
    response = await fetch(path, init);
    text = await response.text(); // may fail too: a connection cut mid-body
  } catch (error) {
    throw new ApiError(0, "unreachable", `The admin API did not answer (${error.message}).`);
  }
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = payload?.error ?? {};
    throw new ApiError(
      response.status,
      error.code ?? "http_" + response.status,
      error.message ?? `The admin API answered ${response.status} ${response.statusText}.`,
      error.field,
    );
  }
  return payload;
}

export const path = {
  tokens: (revoked) => `/v1/tokens${revoked ? "?revoked=true" : ""}`,
  token: (name, reason) => `/v1/tokens/${encodeURIComponent(name)}${reason ? `?${new URLSearchParams({ reason })}` : ""}`,
  app: (name) => `/v1/apps/${encodeURIComponent(name)}`,
  check: (name) => `/v1/apps/${encodeURIComponent(name)}/check`,
  group: (group) => `/v1/groups/${encodeURIComponent(group.label)}?zone=${encodeURIComponent(group.zone)}`,
  switchGroup: (group) =>
    `/v1/groups/${encodeURIComponent(group.label)}/switch?zone=${encodeURIComponent(group.zone)}`,
  webhook: (id) => `/v1/webhooks/${encodeURIComponent(id)}`,
  pin: (group, reason) => {
    const query = new URLSearchParams({ zone: group.zone, ...(reason ? { reason } : {}) });
    return `/v1/groups/${encodeURIComponent(group.label)}/pin?${query}`;
  },
};
