// Stand-in for ComfyUI's `scripts/api.js`: the real `api.apiURL(route)` prefixes "/api", and
// `api.fetchApi(route, options)` fetches that URL (adding ComfyUI's user header).
export const api = {
  api_base: "",
  apiURL(route) {
    return `${this.api_base}/api${route}`;
  },
  fetchApi(route, options = {}) {
    return fetch(this.apiURL(route), { ...options, headers: { ...(options.headers ?? {}), "Comfy-User": "" } });
  },
};
