// The parts of undici a pull uses: the HTTP/1.1 agent, the proxy agent and request(). undici's entry
// point also loads fetch, WebSocket, EventSource, the cache and the mocks, which costs every pull
// ~13 MiB of RSS (`node -e 'require("undici")'`: 71 MiB; these modules: 57 MiB; Node alone: 43).
// The module paths are undici 8.13's (pinned in package.json); the types are its public ones.
import type * as Undici from "undici";
import api from "undici/lib/api/index.js";
import AgentModule from "undici/lib/dispatcher/agent.js";
import DispatcherModule from "undici/lib/dispatcher/dispatcher.js";
import EnvHttpProxyAgentModule from "undici/lib/dispatcher/env-http-proxy-agent.js";

// What undici's index.js does: the request/connect/… methods on every dispatcher (ProxyAgent opens
// its CONNECT tunnels with client.connect()).
Object.assign(DispatcherModule.prototype, api);

export type Dispatcher = Undici.Dispatcher;
/** undici's Dispatcher class, to extend (it is what its agents extend). */
export const DispatcherBase = DispatcherModule;
export type ResponseData = Undici.Dispatcher.ResponseData;
export const Agent = AgentModule;
export const EnvHttpProxyAgent = EnvHttpProxyAgentModule;

export interface RequestOptions {
  dispatcher: Dispatcher;
  method?: Undici.Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * undici's `request(url, options)` through an explicit dispatcher.
 *
 * @example const { statusCode, body } = await request("http://127.0.0.1/os.raw", { dispatcher: new Agent() });
 */
export function request(url: string, options: RequestOptions): Promise<ResponseData> {
  const { origin, pathname, search } = new URL(url);
  const { dispatcher, method = "GET", headers, signal } = options;
  return dispatcher.request({ origin, path: `${pathname}${search}`, method, headers, signal });
}
