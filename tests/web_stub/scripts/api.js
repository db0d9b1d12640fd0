// Stand-in for ComfyUI's `scripts/api.js`: the real `api.apiURL(route)` prefixes "/api", and
// `api.fetchApi(route, options)` fetches that URL (adding ComfyUI's user header).
// Like the real one it is an EventTarget: the server's websocket messages ("execution_error", a
// pack's send_sync events) reach listeners as CustomEvents with the message's data as `detail`.
export const api = Object.assign(new EventTarget(), {
  api_base: "",
  apiURL(route) {
    return `${this.api_base}/api${route}`;
  },
  fetchApi(route, options = {}) {
    return fetch(this.apiURL(route), { ...options, headers: { ...(options.headers ?? {}), "Comfy-User": "" } });
  },
});
