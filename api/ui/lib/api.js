// The API client: the API key (kept in this browser's localStorage; the API never serves a
// page with it), fetch with the key, the error envelope turned into an Error, stream URLs.

/** The API answered 401: the page asks for a key. */
export class NeedsKey extends Error {}

let apiKey = localStorage.getItem("tf_api_key") || "";

/** The key in use, "" when there is none. */
export const currentKey = () => apiKey;

/** Uses and remembers `key`, and says so with an `api-key-change` event on window. */
export function setKey(key) {
  apiKey = key;
  localStorage.setItem("tf_api_key", apiKey);
  window.dispatchEvent(new Event("api-key-change"));
}

/** A stream URL with the key as `access_token` (EventSource cannot send headers). */
export function streamUrl(path) {
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(apiKey)}`;
}

/**
 * Calls the API and answers the parsed body. Throws NeedsKey on a 401, and otherwise an Error
 * with the envelope's message and one line per field detail (`{error: {message, details}}`).
 */
export async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "content-type": "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), ...(options.headers || {}) },
  });
  if (response.status === 401) throw new NeedsKey("an API key is needed");
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = body && body.error ? body.error : { message: response.statusText, details: [] };
    const details = (error.details || []).map((d) => `\n  ${d.path}: ${d.message}`).join("");
    throw new Error(`${error.message}${details}`);
  }
  return body;
}
